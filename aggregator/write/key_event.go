package write

import "github.com/avila-analytics/avila/protocol"

// purchaseName is GA4's purchase event, a key event by default.
const purchaseName = "purchase"

// IsKeyEvent reports whether events named name count as key events
// (GA4's conversions: keyEvents, a session with one is engaged) on site.
// GA4 marks purchase as a key event by default; it is the one rule every
// part of the write stage asks.
func IsKeyEvent(site uint32, name string) bool {
	return name == purchaseName
}

// markKeyEvents sets FlagKeyEvent on the events IsKeyEvent names (a
// sender's own mark is kept).
func markKeyEvents(events []protocol.Event) {
	for i := range events {
		if e := &events[i]; IsKeyEvent(e.Site, e.Name) {
			e.Flags |= protocol.FlagKeyEvent
		}
	}
}
