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
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", fmt.Errorf("not a URL: %w", unwrapURLError(err))
	}
	return strings.ToLower(u.Hostname()), pathWithQuery(u, keep), nil
}

// ScrubReferrer returns the referrer URL (GA4 dr) as scheme://host/path plus
// allowlisted query parameters, or "" when there is none or it is a
// self-referral: its host is pageHost, or one of the site's domains or a
// subdomain of one. keep is as for ScrubPage.
func ScrubReferrer(raw, pageHost string, domains, keep []string) (string, error) {
	if raw == "" {
		return "", nil
	}
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
