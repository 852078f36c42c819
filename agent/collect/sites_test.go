package collect

import (
	"strings"
	"testing"
	"time"

	"github.com/avila-analytics/avila/protocol"
)

func TestNewSitesAndReady(t *testing.T) {
	salt := make([]byte, 32)
	s, err := NewSites(&protocol.Config{
		Sites: []protocol.Site{{ID: 1, MeasurementID: "G-A"}, {ID: 2, MeasurementID: "G-A"}, {ID: 3}},
		Salts: []protocol.Salt{{Site: 1, Day: "2026-03-01", Key: salt}, {Site: 1, Day: "2026-03-02", Key: salt[:3]}},
	})
	if err == nil || !strings.Contains(err.Error(), "G-A belongs to sites 1 and 2") ||
		!strings.Contains(err.Error(), "site 3 has no measurement id") || !strings.Contains(err.Error(), "3 bytes") {
		t.Fatalf("NewSites error %v, want the duplicate id, the missing id and the short salt described", err)
	}
	if site, ok := s.Lookup("G-A"); !ok || site.ID != 1 || s.Len() != 1 {
		t.Fatalf("Lookup(G-A) = %+v, %v; Len %d", site, ok, s.Len())
	}
	if err := s.Ready(testNow); err != nil {
		t.Fatalf("ready with today's salt: %v", err)
	}
	next := testNow.Add(24 * time.Hour)
	if err := s.Ready(next); err == nil || err.Error() != "no visitor salt for site 1 on 2026-03-02 yet; the aggregator has not sent one" {
		t.Fatalf("Ready without today's salt: %v", err)
	}
	empty, err := NewSites(&protocol.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := empty.Ready(testNow); err == nil || !strings.Contains(err.Error(), "no sites") {
		t.Fatalf("Ready without sites: %v", err)
	}
}
