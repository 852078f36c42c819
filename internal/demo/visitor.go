package demo

import (
	"math/rand/v2"
	"net/url"
	"strconv"
	"time"
)

// A visit is the hits one synthetic visitor sends in one session, in the
// GA4 gtag wire format, with the reading time before each.
type visitHit struct {
	params    url.Values
	userAgent string
	language  string
	clientIP  string        // sent as X-Forwarded-For: the demo agent trusts loopback as its proxy
	pause     time.Duration // wait before sending
}

type page struct {
	path, title string
	weight      int
}

var pages = []page{
	{"/", "Avila Analytics: privacy-first web analytics", 30},
	{"/pricing", "Pricing | Avila", 12},
	{"/docs/", "Documentation | Avila", 10},
	{"/docs/getting-started", "Getting started | Avila docs", 9},
	{"/docs/gtag", "Keep your gtag.js | Avila docs", 6},
	{"/blog/", "Blog | Avila", 5},
	{"/blog/cookieless-analytics", "Cookieless analytics without guesswork | Avila blog", 8},
	{"/blog/ga4-data-api", "Reading reports with the GA4 Data API | Avila blog", 5},
	{"/about", "About us | Avila", 4},
	{"/contact", "Contact | Avila", 4},
	{"/signup", "Sign up | Avila", 7},
}

// source is how a visit arrives: a referrer, or campaign parameters on the
// landing URL.
type source struct {
	referrer string
	query    string // appended to the landing page URL
	weight   int
}

var sources = []source{
	{"", "", 28}, // direct
	{"https://www.google.com/", "", 30},
	{"https://www.bing.com/", "", 5},
	{"https://duckduckgo.com/", "", 6},
	{"https://news.ycombinator.com/", "", 6},
	{"https://t.co/", "", 4},
	{"https://www.reddit.com/", "", 4},
	{"https://github.com/", "", 5},
	{"https://l.facebook.com/", "", 3},
	{"", "utm_source=newsletter&utm_medium=email&utm_campaign=spring_launch", 4},
	{"https://www.google.com/", "utm_source=google&utm_medium=cpc&utm_campaign=brand&gclid=Cj0KCQiA", 3},
}

// device is a browser with its screen size.
type device struct {
	userAgent, screen string
	weight            int
}

var devices = []device{
	{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36", "1920x1080", 30},
	{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15", "1440x900", 14},
	{"Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0", "1920x1080", 6},
	{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0", "1536x864", 8},
	{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1", "390x844", 22},
	{"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36", "412x915", 16},
	{"Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1", "820x1180", 4},
}

// clientAddr is a public address the agent's embedded IP→country table
// places in a country, so the demo's geography report has something to show.
// The agent anonymizes it like any other address before anything persists.
type clientAddr struct {
	ip     string
	weight int
}

var clientAddrs = []clientAddr{
	{"8.8.8.8", 14}, {"128.112.0.1", 8}, // US
	{"81.2.69.160", 6}, {"212.58.244.20", 3}, // GB
	{"130.149.7.201", 5}, {"88.198.1.1", 3}, // DE
	{"62.210.16.1", 4}, {"82.64.1.1", 2}, // FR
	{"24.48.0.1", 4},                     // CA
	{"200.160.2.3", 3}, {"189.1.1.1", 2}, // BR
	{"133.11.0.1", 3},     // JP
	{"14.139.1.1", 3},     // IN
	{"193.0.6.139", 2},    // NL
	{"202.12.29.205", 2},  // AU
	{"194.153.205.26", 2}, // IT
	{"192.36.148.17", 1},  // SE
	{"83.1.1.1", 1},       // PL
	{"129.132.0.1", 1},    // CH
	{"41.0.0.1", 1},       // ZA
}

var languages = []string{"en-us", "en-us", "en-us", "en-gb", "es-es", "de-de", "fr-fr", "pt-br", "ja-jp"}

// customEvent is an event a page may fire after its page_view.
type customEvent struct {
	name   string
	params map[string]string // ep.* / epn.* keys
	pathIn func(path string) bool
	chance float64
}

var customEvents = []customEvent{
	{"scroll", map[string]string{"epn.percent_scrolled": "90"}, func(string) bool { return true }, 0.35},
	{"click", map[string]string{"ep.link_domain": "github.com", "ep.link_url": "https://github.com/avila-analytics/avila", "ep.outbound": "true"},
		func(string) bool { return true }, 0.06},
	{"file_download", map[string]string{"ep.file_name": "/files/avila-overview.pdf", "ep.file_extension": "pdf", "ep.link_text": "Download the overview"},
		hasPrefix("/docs"), 0.12},
	{"view_search_results", map[string]string{"ep.search_term": "gtag transport_url"}, hasPrefix("/docs"), 0.10},
	{"sign_up", map[string]string{"ep.method": "email"}, equals("/signup"), 0.40},
	{"generate_lead", map[string]string{"epn.value": "50", "ep.currency": "EUR"}, equals("/contact"), 0.30},
}

func hasPrefix(p string) func(string) bool {
	return func(path string) bool { return len(path) >= len(p) && path[:len(p)] == p }
}

func equals(p string) func(string) bool { return func(path string) bool { return path == p } }

// pick returns an index into a list by weight.
func pick(r *rand.Rand, n int, weight func(int) int) int {
	total := 0
	for i := range n {
		total += weight(i)
	}
	x := r.IntN(total)
	for i := range n {
		if x -= weight(i); x < 0 {
			return i
		}
	}
	return n - 1
}

// planVisit draws one session: a landing page from a source, then (unless
// it bounces) a few more pages, each with the custom events it may fire.
// maxPause bounds the reading time between hits.
func planVisit(r *rand.Rand, measurementID string, now time.Time, maxPause time.Duration) []visitHit {
	dev := devices[pick(r, len(devices), func(i int) int { return devices[i].weight })]
	lang := languages[r.IntN(len(languages))]
	src := sources[pick(r, len(sources), func(i int) int { return sources[i].weight })]
	addr := clientAddrs[pick(r, len(clientAddrs), func(i int) int { return clientAddrs[i].weight })]

	// A quarter of visitors come back: older client id, later session count.
	firstSeen, sessions := now, 1
	if r.IntN(4) == 0 {
		firstSeen, sessions = now.Add(-time.Duration(1+r.IntN(60))*24*time.Hour), 2+r.IntN(5)
	}
	cid := strconv.FormatInt(1e8+r.Int64N(9e8), 10) + "." + strconv.FormatInt(firstSeen.Unix(), 10)
	sid := strconv.FormatInt(now.Unix(), 10)

	npages := 1 // 40% bounce
	if r.Float64() >= 0.4 {
		npages = 2 + min(r.IntN(3)+r.IntN(3), 4)
	}
	pauseOf := func() time.Duration {
		if maxPause <= 0 {
			return 0
		}
		return maxPause/8 + time.Duration(r.Int64N(int64(maxPause-maxPause/8)+1))
	}

	var hits []visitHit
	seq := 0
	engaged := false
	var prevURL string
	cur := pick(r, len(pages), func(i int) int { return pages[i].weight })
	for p := range npages {
		if p > 0 {
			next := pick(r, len(pages), func(i int) int { return pages[i].weight })
			for next == cur {
				next = pick(r, len(pages), func(i int) int { return pages[i].weight })
			}
			cur = next
		}
		pg := pages[cur]
		dl := "https://" + SiteDomain + pg.path
		dr := prevURL
		if p == 0 {
			if src.query != "" {
				dl += "?" + src.query
			}
			dr = src.referrer
		}
		add := func(en string, extra map[string]string, pause time.Duration) {
			seq++
			v := url.Values{}
			v.Set("v", "2")
			v.Set("tid", measurementID)
			v.Set("cid", cid)
			v.Set("sid", sid)
			v.Set("sct", strconv.Itoa(sessions))
			v.Set("ul", lang)
			v.Set("sr", dev.screen)
			v.Set("_s", strconv.Itoa(seq))
			v.Set("en", en)
			v.Set("dl", dl)
			v.Set("dt", pg.title)
			if dr != "" {
				v.Set("dr", dr)
			}
			if seq == 1 {
				v.Set("_ss", "1")
				v.Set("_nsi", "1")
				if sessions == 1 {
					v.Set("_fv", "1")
				}
			} else {
				// Engagement time since the previous hit, in milliseconds.
				v.Set("_et", strconv.FormatInt(pause.Milliseconds()+1, 10))
			}
			// A session is engaged after a second page view or 10 s on a page.
			if p > 0 || pause >= 10*time.Second {
				engaged = true
			}
			if engaged {
				v.Set("seg", "1")
			} else {
				v.Set("seg", "0")
			}
			for k, val := range extra {
				v.Set(k, val)
			}
			hits = append(hits, visitHit{params: v, userAgent: dev.userAgent, language: lang, clientIP: addr.ip, pause: pause})
		}
		pause := time.Duration(0)
		if p > 0 {
			pause = pauseOf()
		}
		add("page_view", nil, pause)
		for _, ev := range customEvents {
			if ev.pathIn(pg.path) && r.Float64() < ev.chance {
				add(ev.name, ev.params, pauseOf()/2)
			}
		}
		prevURL = "https://" + SiteDomain + pg.path
	}
	return hits
}
