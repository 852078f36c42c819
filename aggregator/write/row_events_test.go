package write

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
)

// stagedRows are n staged rows of per events each, as WriteBatch stages
// them, with their events.
func stagedRows(site uint32, n, per int) ([]postgres.StagedRow, [][]protocol.Event) {
	rows := make([]postgres.StagedRow, n)
	events := make([][]protocol.Event, n)
	for i := range rows {
		events[i] = visitEvents(site, i*per, per)
		st := encodeStaged(site, events[i])
		rows[i] = postgres.StagedRow{ID: int64(i + 1), Events: st.Events, Payload: st.Payload}
	}
	return rows, events
}

// TestRowEventsInOrder: a chunk's events are its rows' in the rows'
// order, whether ingest kept a row's events decoded or not, and whether
// the rows to decode are decoded on one goroutine or split between two
// (over parallelDecodeFrom events).
func TestRowEventsInOrder(t *testing.T) {
	for _, c := range []struct {
		name      string
		rows, per int
		keepEvery int // keep every keepEvery-th row decoded (0: none)
	}{
		{"few rows, one goroutine", 3, 50, 0},
		{"two goroutines", 9, 1000, 0},
		{"two goroutines, some kept", 9, 1000, 3},
		{"rows of different sizes kept and not", 7, 777, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := New(Config{MaxEvents: 1 << 20}, nil)
			rows, events := stagedRows(1, c.rows, c.per)
			var want []protocol.Event
			total, kept := 0, 0
			for i, st := range rows {
				if c.keepEvery > 0 && i%c.keepEvery == 0 {
					w.decoded.keep(st.Payload, events[i], time.Now())
					kept += len(events[i])
				}
				// What one decoder gives for each row alone.
				got, err := protocol.DecodeBatch(st.Payload)
				if err != nil {
					t.Fatal(err)
				}
				want = append(want, got.Events...)
				total += st.Events
			}
			got, fromMemory, err := w.rowEvents(w.scratch.eventsFor(total), rows, total)
			if err != nil {
				t.Fatal(err)
			}
			if fromMemory != kept {
				t.Errorf("%d events from memory, want %d", fromMemory, kept)
			}
			if len(got) != len(want) {
				t.Fatalf("%d events, want %d", len(got), len(want))
			}
			for i := range want {
				if !reflect.DeepEqual(got[i], want[i]) {
					t.Fatalf("event %d = %+v, want %+v", i, got[i], want[i])
				}
			}
		})
	}
}

// TestRowEventsRefusesBadRows: a row whose payload does not decode, or
// decodes to other than the events its row counts, fails the chunk with
// the row's id, on either goroutine, and writes nothing past its place.
func TestRowEventsRefusesBadRows(t *testing.T) {
	for _, c := range []struct {
		name string
		bad  int // the row spoilt, of 9 of 1000 events
		how  func(*postgres.StagedRow)
		want string
	}{
		{"payload, first goroutine", 1, func(st *postgres.StagedRow) { st.Payload = st.Payload[:len(st.Payload)/2] }, "staged row 2:"},
		{"payload, second goroutine", 8, func(st *postgres.StagedRow) { st.Payload = []byte("not a batch") }, "staged row 9:"},
		{"more events than counted", 6, func(st *postgres.StagedRow) { st.Events-- }, "staged row 7: 1000 events decoded where its row counts 999"},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := New(Config{}, nil)
			rows, _ := stagedRows(1, 9, 1000)
			c.how(&rows[c.bad])
			total := 0
			for _, st := range rows {
				total += st.Events
			}
			events := w.scratch.eventsFor(total)
			_, _, err := w.rowEvents(events, rows, total)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want one containing %q", err, c.want)
			}
			if end := events[:cap(events)]; len(end) > total && end[total].Name != "" {
				t.Errorf("an event written past the chunk: %+v", end[total])
			}
		})
	}
}
