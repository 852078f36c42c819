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

var (
	// paidMedium is GA4's test for a paid medium.
	paidMedium = regexp.MustCompile(`^(.*cp.*|ppc|retargeting|paid.*)$`)
	// shoppingCampaign is GA4's test for a shopping campaign name.
	shoppingCampaign = regexp.MustCompile(`^(.*(([^a-df-z]|^)shop|shopping).*)$`)
)

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
	paid := paidMedium.MatchString(medium)
	shopCampaign := shoppingCampaign.MatchString(campaign)
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
