package channel

import "testing"

func TestGroup(t *testing.T) {
	f := func(source, medium, campaign, referrerHost, want string) {
		t.Helper()
		if got := Group(source, medium, campaign, referrerHost); got != want {
			t.Errorf("Group(%q, %q, %q, %q) = %q, want %q", source, medium, campaign, referrerHost, got, want)
		}
	}
	// Direct.
	f("(direct)", "(none)", "(direct)", "", Direct)
	f("(direct)", "(not set)", "", "", Direct)
	f("", "", "", "", Direct)
	// Cross-network wins over everything but Direct.
	f("google", "cpc", "Spring Cross-Network PMax", "", CrossNetwork)
	// Paid, by the source's kind.
	f("amazon", "cpc", "", "", PaidShopping)
	f("newsletter", "paid", "summer_shop_deals", "", PaidShopping)
	f("google", "cpc", "brand", "", PaidSearch)
	f("www.bing.com", "ppc", "", "", PaidSearch)
	f("Google", "CPC", "", "", PaidSearch)
	f("facebook", "paid_social", "", "", PaidSocial)
	f("l.facebook.com", "retargeting", "", "", PaidSocial)
	f("youtube", "cpv", "", "", PaidVideo)
	f("partner", "display", "", "", Display)
	f("partner", "banner", "", "", Display)
	f("partner", "cpm", "", "", Display) // cpm is display, though it matches the paid pattern: display is tested first
	f("partner", "paid", "", "", PaidOther)
	f("partner", "cpc", "", "", PaidOther)
	// Organic, by the source's kind.
	f("etsy.com", "referral", "(referral)", "", OrganicShopping)
	f("partner", "referral", "workshop", "", Referral) // "workshop": shop after a letter a-d or f-z is no shopping campaign
	f("partner", "referral", "eshop", "", OrganicShopping)
	f("partner", "referral", "shopping-week", "", OrganicShopping)
	f("t.co", "referral", "(referral)", "", OrganicSocial)
	f("lnkd.in", "referral", "", "", OrganicSocial)
	f("newsletter", "social", "", "", OrganicSocial)
	f("newsletter", "social media", "", "", OrganicSocial)
	f("youtube.com", "referral", "", "", OrganicVideo)
	f("partner", "video", "", "", OrganicVideo)
	f("google", "organic", "(organic)", "", OrganicSearch)
	f("duckduckgo.com", "referral", "", "", OrganicSearch)
	f("partner", "organic", "", "", OrganicSearch)
	f("mail.google.com", "referral", "", "", Referral)
	f("blog.example", "referral", "(referral)", "", Referral)
	f("app-store", "app", "", "", Referral)
	f("partner", "link", "", "", Referral)
	// By medium or source names.
	f("newsletter", "email", "may", "", Email)
	f("e-mail", "(not set)", "", "", Email)
	f("partner", "affiliate", "", "", Affiliates)
	f("podcast", "audio", "", "", Audio)
	f("sms", "(not set)", "", "", SMS)
	f("reminder", "sms", "", "", SMS)
	f("app", "web-push", "", "", MobilePush)
	f("app", "mobile", "", "", MobilePush)
	f("app", "in-app-notification", "", "", MobilePush)
	f("firebase", "(not set)", "", "", MobilePush)
	f("partner", "(not set)", "", "", Unassigned)
	f("partner", "print", "", "", Unassigned)
	// The referrer host stands in for a missing source.
	f("", "", "", "www.google.de", OrganicSearch)
	f("", "", "", "m.facebook.com", OrganicSocial)
	f("", "", "", "blog.example", Referral)
}

func TestGroupsOrder(t *testing.T) {
	if len(Groups) != 19 || Groups[0] != Direct || Groups[len(Groups)-1] != Unassigned {
		t.Fatalf("Groups = %v", Groups)
	}
	seen := map[string]bool{}
	for _, g := range Groups {
		if seen[g] {
			t.Fatalf("%q listed twice", g)
		}
		seen[g] = true
	}
}

// The string tests give what GA4's expressions give.
func TestGroupTestsMatchGA4Expressions(t *testing.T) {
	f := func(s string) {
		t.Helper()
		if got, want := paidMedium(s), paidMediumRE.MatchString(s); got != want {
			t.Errorf("paidMedium(%q) = %v, the expression %v", s, got, want)
		}
		if got, want := shoppingCampaign(s), shoppingCampaignRE.MatchString(s); got != want {
			t.Errorf("shoppingCampaign(%q) = %v, the expression %v", s, got, want)
		}
	}
	for _, s := range []string{"", "cpc", "cp", "xcpx", "ppc", "ppcx", "retargeting", "retargetings", "paid", "paid_social", "unpaid",
		"c\npc", "cp\n", "paid\n", "\nppc", "shop", "shopping", "eshop", "workshop", "work-shop", "bshop", "fshop", "zshop", "Ashop",
		"1shop", "éshop", "\xffshop", "workshopping", "workshop shop", "workshopshop", "shopshop", "\nshop", "a\nshop", "a\n\nshop",
		"shop\n", "x\nshopping", "workshop\n", "a\nshopx\n", "shoppin", "sho", "summer_shop_deals"} {
		f(s)
	}
}

func FuzzGroupTests(f *testing.F) {
	for _, s := range []string{"cpc", "paid\n", "eshop", "workshop", "a\nshop", "éshop", "shopping"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := paidMedium(s), paidMediumRE.MatchString(s); got != want {
			t.Fatalf("paidMedium(%q) = %v, the expression %v", s, got, want)
		}
		if got, want := shoppingCampaign(s), shoppingCampaignRE.MatchString(s); got != want {
			t.Fatalf("shoppingCampaign(%q) = %v, the expression %v", s, got, want)
		}
	})
}
