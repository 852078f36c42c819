package enrich

import (
	"strconv"
	"strings"

	"github.com/mileusna/useragent"
)

// maxCachedUA bounds the length of a user agent kept in the cache; real
// browsers send 100–300 bytes.
const maxCachedUA = 512

// maxParsedUA bounds what the parser sees, so a huge forged header costs no
// more than a long real one.
const maxParsedUA = 1024

// Device categories, as GA4 names them.
const (
	DeviceDesktop = "desktop"
	DeviceMobile  = "mobile"
	DeviceTablet  = "tablet"
)

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
	for _, m := range botMarkers {
		if strings.Contains(lower, m) {
			return uaInfo{bot: true}
		}
	}
	p := useragent.Parse(ua)
	if p.Bot || p.Name == useragent.HeadlessChrome {
		return uaInfo{bot: true}
	}
	info := uaInfo{browser: p.Name, os: p.OS}
	if p.VersionNo.Major > 0 {
		info.version = strconv.Itoa(p.VersionNo.Major)
	}
	switch {
	case p.Tablet:
		info.device = DeviceTablet
	case p.Mobile:
		info.device = DeviceMobile
	case p.Desktop:
		info.device = DeviceDesktop
	}
	return info
}
