package channel

import (
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Traffic is where a session came from, as GA4 reports it in
// sessionSource, sessionMedium and sessionCampaignName.
type Traffic struct {
	Source   string // google, newsletter, t.co, (direct)
	Medium   string // organic, cpc, referral, email, (none), (not set)
	Campaign string // the utm_campaign, or (organic), (referral), (direct), (not set)
}

// Group is t's default channel group; see the package function Group.
func (t Traffic) Group() string { return Group(t.Source, t.Medium, t.Campaign, "") }

// Attribute returns the traffic source of a session from its landing page
// (a URL or a path with its query, as the agent keeps it: only utm_*,
// gclid and a site's kept parameters survive) and its referrer URL (empty
// when there was none or it was the site itself):
//   - campaign tags: utm_source, utm_medium, utm_campaign, each "(not set)"
//     when missing from a tagged URL;
//   - else a Google Ads click id (gclid): google / cpc;
//   - else the referrer: a search engine is its name / organic, campaign
//     (organic); any other site is its host / referral, campaign (referral);
//   - else (direct) / (none), campaign (direct).
//
// Only a landing page's query counts: of one without a query ("?") the
// source is the referrer's alone, whatever its path.
//
// A gclid with campaign tags keeps the tags' campaign but is google / cpc,
// as with GA4's auto-tagging. Values are lower-cased but for the campaign,
// valid UTF-8 without control characters, and at most maxValueRunes long.
func Attribute(landing, referrer string) Traffic {
	q := query(landing)
	src, med, camp := clean(q.Get("utm_source")), clean(q.Get("utm_medium")), clean(q.Get("utm_campaign"))
	if q.Has("gclid") {
		return Traffic{Source: "google", Medium: "cpc", Campaign: orNotSet(camp)}
	}
	if src != "" || med != "" || camp != "" {
		return Traffic{Source: orNotSet(strings.ToLower(src)), Medium: orNotSet(strings.ToLower(med)), Campaign: orNotSet(camp)}
	}
	if host := refHost(referrer); host != "" {
		if name := engineName(host); name != "" {
			return Traffic{Source: name, Medium: "organic", Campaign: "(organic)"}
		}
		return Traffic{Source: host, Medium: "referral", Campaign: "(referral)"}
	}
	return Traffic{Source: "(direct)", Medium: "(none)", Campaign: "(direct)"}
}

// query parses the query of a URL or path; empty (nil, which reads as
// an empty one, without a map made) when there is none or it is
// malformed (an event's path may hold anything a sender put there).
func query(landing string) url.Values {
	_, raw, ok := strings.Cut(landing, "?")
	if !ok {
		return nil
	}
	raw, _, _ = strings.Cut(raw, "#")
	// On a malformed pair ParseQuery still returns the pairs that parsed.
	v, _ := url.ParseQuery(raw)
	return v
}

// refHost is the lower-case host of a referrer URL without a leading www.,
// "" when it has none
// (empty, or an app referrer such as android-app://com.google.android.gm).
func refHost(referrer string) string {
	if referrer == "" {
		return ""
	}
	u, err := url.Parse(referrer)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return ""
	}
	return trimHost(strings.ToLower(u.Hostname()))
}

func orNotSet(s string) string {
	if s == "" {
		return "(not set)"
	}
	return s
}

// maxValueRunes bounds a tag value, as GA4 bounds parameter values.
const maxValueRunes = 100

// clean makes a decoded tag value safe to store: invalid UTF-8 and control
// characters (NUL among them) become U+FFFD, surrounding space is trimmed,
// and the value is cut to maxValueRunes.
func clean(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '\uFFFD'
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if utf8.RuneCountInString(s) > maxValueRunes {
		s = string([]rune(s)[:maxValueRunes])
	}
	return s
}
