package sessions

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// TestAssignIntoReuses: AssignInto into one Assignment, batch after batch
// of rising and falling sizes (with known sessions for some visitors
// only), gives what Assign gives afresh, though the caller appended to
// its lists (derived events, as the write stage does) and scribbled over
// the room they had left.
func TestAssignIntoReuses(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var as Assignment
	for round, n := range []int{2000, 40, 3000, 1, 600, 2500, 90} {
		events := benchEvents(n + round)[round:]
		known := make(map[Key][]Session)
		for i := range events {
			e := &events[i]
			k := Key{e.Site, e.Visitor}
			if _, ok := known[k]; !ok && rng.IntN(3) > 0 {
				start := e.TimeMicros - int64(rng.IntN(40))*time.Minute.Microseconds()
				known[k] = []Session{{ID: e.SessionID + int64(rng.IntN(2)), Start: start, Last: start, FirstSource: int32(rng.IntN(9))}}
			}
		}
		want := Assign(events, known)
		AssignInto(&as, events, known)
		if diff := cmp.Diff(want, as, cmpopts.IgnoreUnexported(Assignment{}), cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("round %d (%d events): reused differs from fresh (-fresh +reused):\n%s", round, len(events), diff)
		}
		// What a caller may do with the assignment before the next.
		for i := range as.Sessions {
			s := &as.Sessions[i]
			for len(s.Events) < cap(s.Events) {
				s.Events = append(s.Events, -7)
			}
			s.ID, s.Last, s.FirstSourceOf = -1, -1, 99
		}
		for len(as.Of) < cap(as.Of) {
			as.Of = append(as.Of, -9)
		}
	}
}
