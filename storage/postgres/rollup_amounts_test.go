package postgres

import "testing"

// TestAmountsSubtractToZero: a cell's amounts less every contribution it
// summed are 0 (no cell kept for a float8 residue), and less some of them
// the others' sum.
func TestAmountsSubtractToZero(t *testing.T) {
	parts := []float64{0.1, 0.2, 19.99, 5.01}
	cell := &packEntry{}
	for _, v := range parts {
		a := &Amounts{AmountPurchaseRevenue: v, AmountPurchases: 1}
		cell.addCounters(&packEntry{amounts: a}, 1)
	}
	for _, v := range parts[:3] {
		cell.addCounters(&packEntry{amounts: &Amounts{AmountPurchaseRevenue: v, AmountPurchases: 1}}, -1)
	}
	if got := cell.amounts[AmountPurchaseRevenue]; got < 5.01-1e-9 || got > 5.01+1e-9 || cell.amounts[AmountPurchases] != 1 {
		t.Fatalf("amounts less three of four purchases: %v", cell.amounts)
	}
	cell.addCounters(&packEntry{amounts: &Amounts{AmountPurchaseRevenue: 5.01, AmountPurchases: 1}}, -1)
	if cell.amounts != nil || cell.held() {
		t.Fatalf("amounts less every purchase: %v, want none", cell.amounts)
	}
}
