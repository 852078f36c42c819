package collect

import (
	"errors"
	"testing"

	"github.com/avila-analytics/avila/protocol/rules"
)

// FuzzParseTrackerEvent feeds arbitrary bodies to the /api/event parser: it
// may not panic, a refusal is a *ParamError naming a field, and an accepted
// event has a measurement id and a GA4-valid name within the limits.
func FuzzParseTrackerEvent(f *testing.F) {
	for _, seed := range []string{
		`{"m":"G-TEST1","n":"page_view","u":"https://shop.test/a?utm_source=x","r":"https://ref.test/","t":"A","l":"en","s":"1x1"}`,
		`{"m":"G-TEST1","n":"signup","p":{"plan":"pro","seats":3,"trial":true,"x":null,"y":[1],"z":1e400}}`,
		`{"m":"G-TEST1","n":"_x"}`, `{"m":"","n":"a"}`, `{"m":"G","n":"é"}`, `{}`, ``, `[]`, `{"m":"G","n":"a"} 1`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		h, err := ParseTrackerEvent(body)
		if err != nil {
			var pe *ParamError
			if !errors.As(err, &pe) || pe.Param == "" {
				t.Fatalf("error %v (%T) names no field", err, err)
			}
			return
		}
		if h.MeasurementID == "" || !rules.ValidName(h.Name) || len(h.Name) > rules.MaxEventNameLen || rules.ReservedPrefix(h.Name) != "" {
			t.Fatalf("accepted %+v", h)
		}
		if len(h.Params)+len(h.NumParams) > maxEventParams {
			t.Fatalf("accepted %d parameters", len(h.Params)+len(h.NumParams))
		}
	})
}
