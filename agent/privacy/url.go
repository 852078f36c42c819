package privacy

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// keepParam reports whether a URL query parameter survives scrubbing:
// campaign tags (utm_*) and the Google Ads click id, which reports need for
// source, medium and campaign, and the site's extra names (extra, lower
// case; protocol.Site.KeepParams). Everything else may carry personal data
// (search terms, e-mail addresses, tokens) and is dropped.
func keepParam(name string, extra []string) bool {
	name = strings.ToLower(name)
	return strings.HasPrefix(name, "utm_") || name == "gclid" || slices.Contains(extra, name)
}

// ScrubPage splits a page URL (GA4 dl) into its lower-case host name (no
// port) and its path followed by the allowlisted query parameters, in their
// original order. The fragment and user info are dropped. An empty URL gives
// empty results; a path-only URL an empty host. The path is "/" when the URL
// has none. keep names the site's extra kept parameters (lower case).
func ScrubPage(raw string, keep []string) (host, path string, err error) {
	if raw == "" {
		return "", "", nil
	}
	if _, host, path, ok := plainURL(raw, keep); ok {
		return host, path, nil
	}
	return scrubParsedPage(raw, keep)
}

// scrubParsedPage is ScrubPage of any URL, through url.Parse.
func scrubParsedPage(raw string, keep []string) (host, path string, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", fmt.Errorf("not a URL: %w", unwrapURLError(err))
	}
	return strings.ToLower(u.Hostname()), pathWithQuery(u, keep), nil
}

// plainURL reads the commonest URLs without url.Parse, as ScrubPage and
// ScrubReferrer would have them: scheme://host[:port][/path][?query]
// [#fragment], a scheme of letters, a host of letters, digits, dots and
// hyphens, a path and fragment of unreserved characters and slashes, a
// query of unreserved characters, = and &: no user info and no escape, so
// nothing to unescape, mask or escape again. It returns the scheme and the
// host in lower case and the path followed by the query parameters kept
// (keepParam with extra). ok is false for any other URL, which the callers
// parse in full.
func plainURL(raw string, extra []string) (scheme, host, path string, ok bool) {
	return plainURLMemo(raw, extra, nil)
}

// PageMemo is ScrubPage for the pages of one request, one after another:
// they are usually on one host, and a URL that starts with the scheme and
// authority of the last plain URL read through the memo, followed by the
// path, query or fragment, takes that URL's scheme and host instead of
// reading them again. The zero value is ready.
type PageMemo struct {
	prefix       string // scheme://authority of the last plain URL, as sent; "" for none
	scheme, host string // as plainURL returned them for it
}

// ScrubPage is ScrubPage(raw, keep).
func (m *PageMemo) ScrubPage(raw string, keep []string) (host, path string, err error) {
	if raw == "" {
		return "", "", nil
	}
	if _, host, path, ok := plainURLMemo(raw, keep, m); ok {
		return host, path, nil
	}
	return scrubParsedPage(raw, keep)
}

// plainURLMemo is plainURL, taking the scheme and host from m (nil: none)
// when raw starts with m's prefix and its authority ends there, and
// remembering them in m for a plain URL that does not.
func plainURLMemo(raw string, extra []string, m *PageMemo) (scheme, host, path string, ok bool) {
	if m != nil && m.prefix != "" && len(raw) >= len(m.prefix) && raw[:len(m.prefix)] == m.prefix &&
		(len(raw) == len(m.prefix) || raw[len(m.prefix)] == '/' || raw[len(m.prefix)] == '?' || raw[len(m.prefix)] == '#') {
		rest, fragment, _ := cutByte(raw[len(m.prefix):], '#')
		rest, query, hasQuery := cutByte(rest, '?')
		path = "/"
		if rest != "" {
			path = rest // begins with the '/' that ends the authority
		}
		if !allOf(path, pathByte) || !allOf(fragment, pathByte) || !allOf(query, queryByte) {
			return "", "", "", false
		}
		if hasQuery && query != "" {
			if path, ok = keptQuery(path, query, extra); !ok {
				return "", "", "", false
			}
		}
		return m.scheme, m.host, path, true
	}
	i, upper := 0, false
	for i < len(raw) && ('a' <= raw[i]|0x20 && raw[i]|0x20 <= 'z') {
		upper = upper || raw[i] < 'a'
		i++
	}
	if i == 0 || !strings.HasPrefix(raw[i:], "://") {
		return "", "", "", false
	}
	scheme = raw[:i]
	rest, fragment, _ := cutByte(raw[i+3:], '#')
	rest, query, hasQuery := cutByte(rest, '?')
	authority, path := rest, "/"
	if slash := strings.IndexByte(rest, '/'); slash >= 0 {
		authority, path = rest[:slash], rest[slash:]
	}
	host = authority
	if colon := strings.IndexByte(authority, ':'); colon >= 0 {
		host = authority[:colon]
		port := authority[colon+1:]
		if port == "" || !all(port, func(c byte) bool { return '0' <= c && c <= '9' }) {
			return "", "", "", false
		}
	}
	hostUpper, ok := hostBytes(host)
	if host == "" || !ok || !allOf(path, pathByte) || !allOf(fragment, pathByte) || !allOf(query, queryByte) {
		return "", "", "", false
	}
	if hasQuery && query != "" {
		if path, ok = keptQuery(path, query, extra); !ok {
			return "", "", "", false
		}
	}
	// Lowered only when they hold an upper-case letter: strings.ToLower
	// returns other ASCII text as it is.
	if upper {
		scheme = strings.ToLower(scheme)
	}
	if hostUpper {
		host = strings.ToLower(host)
	}
	if m != nil {
		m.prefix, m.scheme, m.host = raw[:i+3+len(authority)], scheme, host
	}
	return scheme, host, path, true
}

// Classes of the bytes a plain URL (plainURL) may hold in each part.
const (
	hostByte  = 1 << iota // letters, digits, . and -
	pathByte              // unreserved characters and / (path and fragment)
	queryByte             // unreserved characters, = and &
	upperByte             // A to Z
)

// urlBytes is the classes of each byte, read by table rather than by
// tests for each byte of a URL.
var urlBytes = func() (t [256]uint8) {
	for i := range t {
		c := byte(i)
		if isAlnum(c) || c == '.' || c == '-' {
			t[i] |= hostByte
		}
		if isPathByte(c) {
			t[i] |= pathByte
		}
		if isUnreserved(c) || c == '=' || c == '&' {
			t[i] |= queryByte
		}
		if 'A' <= c && c <= 'Z' {
			t[i] |= upperByte
		}
	}
	return t
}()

// allOf reports whether every byte of s is of class.
func allOf(s string, class uint8) bool {
	for i := 0; i < len(s); i++ {
		if urlBytes[s[i]]&class == 0 {
			return false
		}
	}
	return true
}

// hostBytes reports whether every byte of host is a host byte, and
// whether one is an upper-case letter.
func hostBytes(host string) (upper, ok bool) {
	var seen uint8
	for i := 0; i < len(host); i++ {
		c := urlBytes[host[i]]
		if c&hostByte == 0 {
			return false, false
		}
		seen |= c
	}
	return seen&upperByte != 0, true
}

// cutByte is strings.Cut of a one-byte separator, without the general
// search strings.Cut goes through.
func cutByte(s string, sep byte) (before, after string, found bool) {
	if i := strings.IndexByte(s, sep); i >= 0 {
		return s[:i], s[i+1:], true
	}
	return s, "", false
}

// keptQuery is path followed by the parameters of query (plain text, as
// plainURL takes it) that keepParam keeps, in their order. ok is false
// when a kept value holds an =, which url.QueryEscape would escape.
func keptQuery(path, query string, extra []string) (_ string, ok bool) {
	var b strings.Builder
	sep := byte('?')
	for part := range strings.SplitSeq(query, "&") {
		k, v, _ := strings.Cut(part, "=")
		if !keepParam(k, extra) {
			continue
		}
		if strings.IndexByte(v, '=') >= 0 {
			return "", false
		}
		if b.Len() == 0 {
			b.Grow(len(path) + len(query) + 1)
			b.WriteString(path)
		}
		b.WriteByte(sep)
		sep = '&'
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(v)
	}
	if b.Len() == 0 {
		return path, true
	}
	return b.String(), true
}

// all reports whether every byte of s is ok.
func all(s string, ok func(byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}

// isUnreserved reports URL's unreserved characters (RFC 3986): letters,
// digits, - . _ ~. url.QueryEscape leaves them as they are.
func isUnreserved(c byte) bool {
	return isAlnum(c) || c == '-' || c == '.' || c == '_' || c == '~'
}

func isPathByte(c byte) bool { return isUnreserved(c) || c == '/' }

func isAlnum(c byte) bool {
	return 'a' <= c|0x20 && c|0x20 <= 'z' || '0' <= c && c <= '9'
}

// ScrubReferrer returns the referrer URL (GA4 dr) as scheme://host/path plus
// allowlisted query parameters, or "" when there is none or it is a
// self-referral: its host is pageHost, or one of the site's domains or a
// subdomain of one. keep is as for ScrubPage.
func ScrubReferrer(raw, pageHost string, domains, keep []string) (string, error) {
	if raw == "" {
		return "", nil
	}
	if scheme, host, path, ok := plainURL(raw, keep); ok {
		if IsOwnHost(host, pageHost, domains) {
			return "", nil
		}
		return scheme + "://" + host + path, nil
	}
	return scrubParsedReferrer(raw, pageHost, domains, keep)
}

// scrubParsedReferrer is ScrubReferrer of any URL, through url.Parse.
func scrubParsedReferrer(raw, pageHost string, domains, keep []string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("not a URL: %w", unwrapURLError(err))
	}
	host := strings.ToLower(u.Hostname())
	if host == "" || IsOwnHost(host, pageHost, domains) {
		return "", nil
	}
	return strings.ToLower(u.Scheme) + "://" + host + pathWithQuery(u, keep), nil
}

// IsOwnHost reports whether host (lower case) is pageHost or a site domain
// or a subdomain of one.
func IsOwnHost(host, pageHost string, domains []string) bool {
	if host == pageHost {
		return true
	}
	for _, d := range domains {
		d = strings.ToLower(d)
		if host == d || strings.HasSuffix(host, "."+d) {
			return true
		}
	}
	return false
}

// pathWithQuery renders u's path and its allowlisted query parameters
// (keepParam with extra), with e-mail-like values masked in both.
func pathWithQuery(u *url.URL, extra []string) string {
	p := ScrubEmails(u.EscapedPath())
	if p == "" {
		p = "/"
	}
	if u.RawQuery == "" {
		return p
	}
	var b strings.Builder
	b.WriteString(p)
	sep := byte('?')
	for part := range strings.SplitSeq(u.RawQuery, "&") {
		k, v, _ := strings.Cut(part, "=")
		key, err := url.QueryUnescape(k)
		if err != nil || !keepParam(key, extra) {
			continue
		}
		val, err := url.QueryUnescape(v)
		if err != nil {
			continue
		}
		val = ScrubEmails(val)
		b.WriteByte(sep)
		sep = '&'
		b.WriteString(url.QueryEscape(key))
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(val))
	}
	return b.String()
}

// unwrapURLError drops url.Error's "parse <whole URL>:" prefix: the caller
// names the parameter, and the URL may be long.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
