package enrich

import (
	"strconv"
	"strings"

	"github.com/mileusna/useragent"

	"github.com/avila-analytics/avila/protocol/names"
)

// maxCachedUA bounds the length of a user agent kept in the cache; real
// browsers send 100–300 bytes.
const maxCachedUA = 512

// maxParsedUA bounds what the parser sees, so a huge forged header costs no
// more than a long real one.
const maxParsedUA = 1024

// Device categories, as GA4 names them.
const (
	DeviceDesktop = names.DeviceDesktop
	DeviceMobile  = names.DeviceMobile
	DeviceTablet  = names.DeviceTablet
	DeviceSmartTV = names.DeviceSmartTV
)

// BrowserOther stands for every browser outside the known families: the
// parser falls back to any product token of the user agent, and such
// tokens must not reach storage (they can single a visitor out, and the
// set of them is unbounded). Operating systems outside the known families
// are left empty for the same reason. Known families are stored under
// GA4's names (protocol/names: Macintosh, Chrome OS, Samsung Internet …).
const BrowserOther = "Other"

// tvMarkers are lower-case substrings of smart TV user agents.
var tvMarkers = []string{"smart-tv", "smarttv", "tizen", "web0s", "webos", "hbbtv", "appletv", "crkey", "roku", "bravia", "netcast"}

// uaInfo is what is kept of a user agent.
type uaInfo struct {
	browser, version, os, device string
	bot                          bool
}

// botMarkers are lower-case substrings of user agents that no person's
// browser sends: crawlers, link previews, uptime monitors, HTTP libraries,
// and the automation and headless markers of scripted browsers.
var botMarkers = []string{
	"bot", "crawl", "spider", "slurp", "archiver", "facebookexternalhit", "embedly", "preview",
	"headless", "phantomjs", "selenium", "webdriver", "puppeteer", "playwright", "electron/", "lighthouse",
	"pingdom", "uptime", "monitor", "statuscake", "site24x7", "gtmetrix", "pagespeed",
	"curl/", "wget/", "httpie/", "python-requests", "python-urllib", "aiohttp", "go-http-client",
	"java/", "okhttp", "apache-httpclient", "libwww-perl", "node-fetch", "axios/", "undici", "scrapy",
	"postmanruntime", "insomnia/",
}

// parseUA parses a user agent; an empty one is a bot (every browser sends
// one).
func parseUA(ua string) uaInfo {
	if strings.TrimSpace(ua) == "" {
		return uaInfo{bot: true}
	}
	if len(ua) > maxParsedUA {
		ua = ua[:maxParsedUA]
	}
	lower := strings.ToLower(ua)
	if containsAny(lower, botMarkers) {
		return uaInfo{bot: true}
	}
	p := useragent.Parse(ua)
	if p.Bot || p.Name == useragent.HeadlessChrome {
		return uaInfo{bot: true}
	}
	info := uaInfo{browser: BrowserOther}
	if name, ok := names.Browser(p.Name, p.OS); ok {
		info.browser = name
		if p.VersionNo.Major > 0 {
			info.version = strconv.Itoa(p.VersionNo.Major)
		}
	}
	if name, ok := names.OperatingSystems[p.OS]; ok {
		info.os = name
	}
	switch {
	case containsAny(lower, tvMarkers):
		info.device = DeviceSmartTV
	case p.Tablet:
		info.device = DeviceTablet
	case p.Mobile:
		info.device = DeviceMobile
	case p.Desktop:
		info.device = DeviceDesktop
	}
	return info
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
