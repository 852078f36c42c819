package rules

import "strings"

// GA4's reserved event names (web and app) that senders may not use.
var reservedEventNames = map[string]bool{
	"ad_activeview": true, "ad_click": true, "ad_exposure": true, "ad_query": true, "ad_reward": true,
	"adunit_exposure": true, "app_background": true, "app_clear_data": true, "app_exception": true,
	"app_remove": true, "app_store_refund": true, "app_store_subscription_cancel": true,
	"app_store_subscription_convert": true, "app_store_subscription_renew": true, "app_update": true,
	"app_upgrade": true, "dynamic_link_app_open": true, "dynamic_link_app_update": true,
	"dynamic_link_first_open": true, "error": true, "first_open": true, "first_visit": true,
	"in_app_purchase": true, "notification_dismiss": true, "notification_foreground": true,
	"notification_open": true, "notification_receive": true, "os_update": true, "session_start": true,
	"session_start_with_rollout": true, "user_engagement": true,
}

// GA4's reserved user property names.
var reservedUserProps = map[string]bool{
	"first_open_time": true, "first_visit_time": true, "last_deep_link_referrer": true,
	"user_id": true, "first_open_after_install": true,
}

// reservedPrefixes are GA4's reserved name prefixes, in lower case.
var reservedPrefixes = []string{"_", "firebase_", "ga_", "google_", "gtag."}

// ReservedPrefix returns the GA4-reserved prefix name starts with, in any
// case, or "".
func ReservedPrefix(name string) string {
	// Every reserved prefix starts with _, f or g: a name whose first
	// byte is another ASCII character, which lowers to itself or another
	// letter, starts with none (nearly every name sent).
	if name != "" {
		if c := name[0]; c < 0x80 && c != '_' && c|0x20 != 'f' && c|0x20 != 'g' {
			return ""
		}
	}
	lower := name
	for i := 0; i < len(name); i++ {
		if name[i] >= 0x80 {
			// A few other characters lower to ASCII letters (İ to i,
			// the Kelvin sign to k): compare what GA4 compares.
			lower = strings.ToLower(name)
			break
		}
	}
	for _, p := range reservedPrefixes {
		if hasPrefixFold(lower, p) {
			return p
		}
	}
	return ""
}

// hasPrefixFold reports whether s starts with prefix (lower-case ASCII)
// with s's ASCII letters in any case.
func hasPrefixFold(s, prefix string) bool {
	if len(s) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
}

// ValidName reports GA4's name pattern: a letter, then letters, digits and
// underscores.
func ValidName(name string) bool {
	if name == "" || nameBytes[name[0]] != nameLetter {
		return false
	}
	for i := 1; i < len(name); i++ {
		if nameBytes[name[i]] == 0 {
			return false
		}
	}
	return true
}

// nameBytes classes the bytes of GA4's name pattern (ValidName): letters,
// then digits and underscores; 0 for any other byte. By table, a name's
// bytes cost a load and a test each.
var nameBytes = func() (t [256]uint8) {
	for c := range t {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
			t[c] = nameLetter
		case c == '_', c >= '0' && c <= '9':
			t[c] = nameOther
		}
	}
	return t
}()

const (
	nameLetter = 1 + iota
	nameOther
)

// ReservedEventName reports whether GA4 reserves an event name.
func ReservedEventName(name string) bool { return reservedEventNames[name] }

// ReservedUserProp reports whether GA4 reserves a user property name.
func ReservedUserProp(name string) bool { return reservedUserProps[name] }
