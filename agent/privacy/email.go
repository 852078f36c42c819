package privacy

import (
	"regexp"
	"strings"
)

// EmailMask replaces an e-mail-like value wherever one is found.
const EmailMask = "[email]"

// emailLike matches an e-mail address, plain or with its @ percent-encoded
// (as it appears in URLs). Compiled once; regexp is safe for concurrent use.
var emailLike = regexp.MustCompile(`(?i)[a-z0-9._%+\-]+(?:@|%40)[a-z0-9\-]+(?:\.[a-z0-9\-]+)*\.[a-z]{2,}`)

// ScrubEmails replaces every e-mail-like value in s with EmailMask. Text
// without an @ (plain or %40) is returned as is, at no cost.
func ScrubEmails(s string) string {
	if !strings.Contains(s, "@") && !strings.Contains(s, "%40") {
		return s
	}
	return emailLike.ReplaceAllLiteralString(s, EmailMask)
}
