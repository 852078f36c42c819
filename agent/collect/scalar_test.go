package collect

import (
	"encoding/json"
	"math"
	"strconv"
	"testing"
)

// scalarByUnmarshal is scalar through json.Unmarshal alone, the reference
// its direct reading of the common shapes must agree with.
func scalarByUnmarshal(raw json.RawMessage) (string, bool, bool) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", false, false
	}
	switch v := v.(type) {
	case string:
		return v, true, true
	case bool:
		return strconv.FormatBool(v), true, false
	case float64:
		if math.IsInf(v, 0) || math.IsNaN(v) {
			return "", false, false
		}
		return strconv.FormatFloat(v, 'g', -1, 64), true, false
	}
	return "", false, false
}

func sameScalar(t *testing.T, raw string) {
	t.Helper()
	s, ok, isText := scalar(json.RawMessage(raw))
	ws, wok, wisText := scalarByUnmarshal(json.RawMessage(raw))
	if s != ws || ok != wok || isText != wisText {
		t.Fatalf("scalar(%q) = %q, %v, %v; json.Unmarshal gives %q, %v, %v", raw, s, ok, isText, ws, wok, wisText)
	}
}

func TestScalarMatchesUnmarshal(t *testing.T) {
	for _, raw := range []string{
		`"plain"`, `""`, ` "spaced" `, `"é ünïcode €"`, `"a\"b"`, `"tab\there"`, `"\u00e9"`, "\"\xff\xfe\"", `"unterminated`,
		`"`, `"ctl` + "\x01" + `"`, `true`, `false`, `tru`, `null`, `{}`, `[]`,
		`0`, `-0`, `90`, `1.50`, `-12.5e3`, `1E+2`, `1e400`, `-1e400`, `1e-400`, `0.1`, `9007199254740993`,
		"0 \v", "\v1", " 1\n", "\v  \"", "\f\"a\"", `01`, `1.`, `.5`, `-`, `1e`, `+1`, `0x10`, `1_000`, `Infinity`, `NaN`, `1 2`,
	} {
		sameScalar(t, raw)
	}
}

func FuzzScalar(f *testing.F) {
	for _, raw := range []string{`"plain"`, `"a\"b"`, `-12.5e3`, `true`, `01`, "\"\xff\""} {
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw string) { sameScalar(t, raw) })
}

// A Measurement Protocol parameter costs its value's text and no more:
// scalar's fallbacks to json.Unmarshal, whose targets escape, allocate only
// when taken, and the commonest names are not copied.
func TestScalarAllocations(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want float64
	}{{`"Post 12 | Bench Example blog"`, 1}, {`1520`, 1}, {`true`, 0}} {
		raw := json.RawMessage(tc.raw)
		if got := testing.AllocsPerRun(50, func() { _, _, _ = scalar(raw) }); got > tc.want {
			t.Errorf("scalar(%s): %.0f allocations, want at most %.0f", tc.raw, got, tc.want)
		}
	}
	key := []byte("engagement_time_msec")
	if got := testing.AllocsPerRun(50, func() { _ = paramName(key) }); got != 0 {
		t.Errorf("paramName(%s): %.0f allocations, want 0", key, got)
	}
}
