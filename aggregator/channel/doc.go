// Package channel attributes a session's traffic the way Google Analytics 4
// does: Attribute reads source, medium and campaign from a landing page's
// campaign tags (utm_*), the Google Ads click id (gclid), or the referrer,
// and Group maps them to GA4's default channel groups (Direct, Organic
// Search, Paid Social, Email, …).
//
// The rules follow Google's published definitions of the default channel
// group, evaluated in GA4's order, with matching that ignores case. GA4
// decides "source matches a list of search (social, video, shopping)
// sites" with a list Google maintains; lists.go holds this package's own
// lists of well-known sites in each category, matched by name (google,
// facebook) or host name (www.google.co.uk, l.facebook.com, t.co).
//
// The package is pure: no I/O, no state; safe for concurrent use.
package channel
