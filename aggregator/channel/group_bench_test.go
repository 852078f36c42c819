package channel

import "testing"

// BenchmarkGroup groups three sessions: a referral, a paid search and an
// email campaign.
func BenchmarkGroup(b *testing.B) {
	for b.Loop() {
		Group("ref7.example", "referral", "", "")
		Group("google", "cpc", "brand_spring", "")
		Group("newsletter", "email", "workshop_week", "")
	}
}
