package channel

import "strings"

// category is the kind of site a source is, for the "source matches a
// list of … sites" conditions of the default channel group.
type category uint8

const (
	none category = iota
	search
	social
	video
	shopping
)

// siteNames are site names matched against a whole source (utm_source=
// google) or any label but the last of a host name (www.google.co.uk,
// l.facebook.com, search.yahoo.com). Only names distinctive enough to mean
// that site wherever they appear as a label are here.
var siteNames = map[string]category{
	// Search engines.
	"google": search, "bing": search, "yahoo": search, "baidu": search, "yandex": search,
	"duckduckgo": search, "ecosia": search, "naver": search, "seznam": search, "sogou": search,
	"qwant": search, "startpage": search, "daum": search, "yippy": search, "dogpile": search,
	"metacrawler": search, "webcrawler": search, "mojeek": search, "onet": search, "rambler": search,
	"coccoc": search, "petalsearch": search, "kagi": search, "searx": search, "lycos": search,
	"aol": search, "avg": search, "babylon": search,
	// Social networks.
	"facebook": social, "instagram": social, "linkedin": social, "twitter": social, "pinterest": social,
	"reddit": social, "tiktok": social, "snapchat": social, "tumblr": social, "vk": social,
	"weibo": social, "quora": social, "threads": social, "mastodon": social, "bsky": social,
	"whatsapp": social, "telegram": social, "discord": social, "wechat": social, "qzone": social,
	"xing": social, "meetup": social, "nextdoor": social, "odnoklassniki": social,
	"stackoverflow": social, "stackexchange": social, "slack": social, "skype": social, "viber": social,
	"messenger": social, "flickr": social, "deviantart": social, "goodreads": social, "yelp": social,
	"tripadvisor": social, "producthunt": social, "ycombinator": social, "medium": social, "blogger": social,
	"wordpress": social, "disqus": social, "kakao": social, "douban": social, "renren": social,
	// Video sites.
	"youtube": video, "vimeo": video, "twitch": video, "dailymotion": video, "wistia": video,
	"netflix": video, "hulu": video, "bilibili": video, "iqiyi": video, "youku": video,
	"rumble": video, "vevo": video, "veoh": video, "curiositystream": video,
	// Shopping sites.
	"amazon": shopping, "ebay": shopping, "etsy": shopping, "walmart": shopping, "aliexpress": shopping,
	"alibaba": shopping, "shopify": shopping, "bestbuy": shopping, "rakuten": shopping,
	"mercadolibre": shopping, "zalando": shopping, "wayfair": shopping, "ikea": shopping, "shopzilla": shopping,
	"pricegrabber": shopping, "idealo": shopping, "temu": shopping, "shein": shopping,
	"flipkart": shopping, "taobao": shopping, "tmall": shopping, "otto": shopping,
}

// siteHosts are host names and short source names that belong to a site
// whose name alone would be too generic or too short to match as a label.
var siteHosts = map[string]category{
	// Search.
	"search.brave.com": search, "so.com": search, "ask.com": search, "msn.com": search,
	"search.aol.com": search, "info.com": search, "news.google.com": search, "perplexity.ai": search,
	// Social.
	"t.co": social, "x.com": social, "fb": social, "fb.me": social, "fb.com": social, "ig": social,
	"lnkd.in": social, "pin.it": social, "redd.it": social, "ok.ru": social, "vk.com": social,
	"line.me": social, "t.me": social, "wa.me": social, "m.me": social, "news.ycombinator.com": social,
	// Video.
	"yt": video, "youtu.be": video, "ted.com": video,
	// Google's own non-search services: referrals, not searches.
	"mail.google.com": none, "docs.google.com": none, "drive.google.com": none, "sites.google.com": none,
	"groups.google.com": none, "calendar.google.com": none, "mail.yahoo.com": none,
	// Shopping.
	"target.com": shopping, "wish.com": shopping, "jd.com": shopping, "shopping.google.com": shopping,
	"igshopping": shopping, "google shopping": shopping, "shopping.yahoo.com": shopping,
}

// engineName is the name GA4-style reports give a search engine as a
// source ("google" for www.google.co.uk), "" when host is none.
func engineName(host string) string {
	host = trimHost(host)
	if categoryOf(host) != search {
		return ""
	}
	if _, ok := siteHosts[host]; ok {
		return host
	}
	// The label that made it a search engine: the first one named.
	if l, c := namedLabel(host); c == search {
		return l
	}
	return host
}

// categoryOf is the kind of site source (a name or a host, lower case) is.
func categoryOf(source string) category {
	source = trimHost(source)
	if c, ok := siteHosts[source]; ok {
		return c
	}
	if c := siteNames[source]; c != none {
		return c
	}
	_, c := namedLabel(source)
	return c
}

// namedLabel is the first label of host but its last that siteNames
// names, and its category; none when no label is named. It walks the
// labels without splitting them into a new slice.
func namedLabel(host string) (string, category) {
	for rest := host; ; {
		l, after, more := strings.Cut(rest, ".")
		if !more {
			return "", none
		}
		if c := siteNames[l]; c != none {
			return l, c
		}
		rest = after
	}
}

// trimHost drops a leading www. and any port, so www.google.com:443 and
// google.com compare equal.
func trimHost(h string) string {
	h = strings.TrimPrefix(h, "www.")
	if i := strings.LastIndexByte(h, ':'); i > 0 && !strings.Contains(h[i:], "]") {
		h = h[:i]
	}
	return h
}
