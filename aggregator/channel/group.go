package channel

import (
	"regexp"
	"strings"
)

// Default channel group names, as GA4 reports them in
// sessionDefaultChannelGroup.
const (
	Direct          = "Direct"
	CrossNetwork    = "Cross-network"
	PaidShopping    = "Paid Shopping"
	PaidSearch      = "Paid Search"
	PaidSocial      = "Paid Social"
	PaidVideo       = "Paid Video"
	Display         = "Display"
	PaidOther       = "Paid Other"
	OrganicShopping = "Organic Shopping"
	OrganicSocial   = "Organic Social"
	OrganicVideo    = "Organic Video"
	OrganicSearch   = "Organic Search"
	Referral        = "Referral"
	Email           = "Email"
	Affiliates      = "Affiliates"
	Audio           = "Audio"
	SMS             = "SMS"
	MobilePush      = "Mobile Push Notifications"
	Unassigned      = "Unassigned"
)

// Groups lists every group in GA4's evaluation order, Unassigned last.
var Groups = []string{Direct, CrossNetwork, PaidShopping, PaidSearch, PaidSocial, PaidVideo, Display, PaidOther,
	OrganicShopping, OrganicSocial, OrganicVideo, OrganicSearch, Referral, Email, Affiliates, Audio, SMS, MobilePush, Unassigned}

// GA4 states its tests of a paid medium and a shopping campaign name as
// regular expressions, paidMediumRE and shoppingCampaignRE. paidMedium and
// shoppingCampaign are the same tests on strings (a regexp match was most
// of Group's time, and a derivation groups each distinct landing);
// TestGroupTestsMatchGA4Expressions and FuzzGroupTests hold them to the
// expressions.
var (
	paidMediumRE       = regexp.MustCompile(`^(.*cp.*|ppc|retargeting|paid.*)$`)
	shoppingCampaignRE = regexp.MustCompile(`^(.*(([^a-df-z]|^)shop|shopping).*)$`)
)

// paidMedium is paidMediumRE's test: no alternative matches a newline.
func paidMedium(m string) bool {
	if strings.IndexByte(m, '\n') >= 0 {
		return false
	}
	return strings.Contains(m, "cp") || m == "ppc" || m == "retargeting" || strings.HasPrefix(m, "paid")
}

// shoppingCampaign is shoppingCampaignRE's test: "shopping" anywhere, or
// "shop" at the start or after anything but a letter a-d or f-z (a byte
// of a multi-byte or invalid rune is none). A name holding a newline,
// which the class may match where '.' does not, is left to the
// expression.
func shoppingCampaign(c string) bool {
	if strings.IndexByte(c, '\n') >= 0 {
		return shoppingCampaignRE.MatchString(c)
	}
	if strings.Contains(c, "shopping") {
		return true
	}
	for i := 0; ; i++ {
		j := strings.Index(c[i:], "shop")
		if j < 0 {
			return false
		}
		i += j
		if i == 0 || !letterNotE(c[i-1]) {
			return true
		}
	}
}

// letterNotE reports whether b is in [a-df-z].
func letterNotE(b byte) bool { return b >= 'a' && b <= 'z' && b != 'e' }

// Group returns the GA4 default channel group of a session with the given
// source, medium and campaign name (as Attribute gives them, or as sent in
// utm_*). referrerHost, when not empty, is the host the visitor came from;
// it counts as the source when source is empty, so an untagged visit from a
// search engine or a social site lands in its organic group.
func Group(source, medium, campaign, referrerHost string) string {
	source = strings.ToLower(strings.TrimSpace(source))
	medium = strings.ToLower(strings.TrimSpace(medium))
	campaign = strings.ToLower(strings.TrimSpace(campaign))
	if source == "" && referrerHost != "" {
		source = strings.ToLower(referrerHost)
		if medium == "" {
			medium = "referral"
		}
	}
	cat := categoryOf(source)
	paid := paidMedium(medium)
	shopCampaign := shoppingCampaign(campaign)
	switch {
	case (source == "(direct)" || source == "") && (medium == "(none)" || medium == "(not set)" || medium == ""):
		return Direct
	case strings.Contains(campaign, "cross-network"):
		return CrossNetwork
	case (cat == shopping || shopCampaign) && paid:
		return PaidShopping
	case cat == search && paid:
		return PaidSearch
	case cat == social && paid:
		return PaidSocial
	case cat == video && paid:
		return PaidVideo
	case medium == "display" || medium == "banner" || medium == "expandable" || medium == "interstitial" || medium == "cpm":
		return Display
	case paid:
		return PaidOther
	case cat == shopping || shopCampaign:
		return OrganicShopping
	case cat == social || isOneOf(medium, "social", "social-network", "social-media", "sm", "social network", "social media"):
		return OrganicSocial
	case cat == video || strings.Contains(medium, "video"):
		return OrganicVideo
	case cat == search || medium == "organic":
		return OrganicSearch
	case isOneOf(medium, "referral", "app", "link"):
		return Referral
	case isEmail(source) || isEmail(medium):
		return Email
	case medium == "affiliate":
		return Affiliates
	case medium == "audio":
		return Audio
	case source == "sms" || medium == "sms":
		return SMS
	case strings.HasSuffix(medium, "push") || strings.Contains(medium, "mobile") ||
		strings.Contains(medium, "notification") || source == "firebase":
		return MobilePush
	}
	return Unassigned
}

func isEmail(s string) bool { return isOneOf(s, "email", "e-mail", "e_mail", "e mail") }

func isOneOf(s string, list ...string) bool {
	for _, l := range list {
		if s == l {
			return true
		}
	}
	return false
}
