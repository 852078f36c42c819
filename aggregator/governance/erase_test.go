package governance_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/avila-analytics/avila/aggregator/governance"
	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/protocol/identity"
	"github.com/avila-analytics/avila/storage/postgres"
)

const (
	subjectCookie = "GA1.1.1234567890.1764000000" // the subject's _ga cookie
	subjectUserID = "customer-4711"
)

// subjectEvents are the subject's visits on site: a session 8 days ago
// (packed by then), one 5 days ago, one today, with a page and a country
// nobody else has, and a user_id on one of them. The first and the last end
// in a purchase (so the subject has items in item packs and in rows).
func subjectEvents(rng *rand.Rand, site uint32, now time.Time) ([]protocol.Event, uint64, uint64) {
	h, err := identity.New(site, secret)
	if err != nil {
		panic(err)
	}
	cid, _ := identity.ClientIDFromCookie(subjectCookie)
	key, user := h.Client(cid), h.User(subjectUserID)
	var out []protocol.Event
	for i, daysAgo := range []int{8, 5, 0} {
		v := visit(rng, site, key, now.AddDate(0, 0, -daysAgo).Add(-2*time.Hour), 6, i == 0)
		for j := range v {
			if j%2 == 0 {
				v[j].Path, v[j].Country = "/account/customer-4711", "IS"
			}
			if i == 1 {
				v[j].User = user
				v[j].UserProps = map[string]string{"plan": "pro"}
			}
		}
		if v[len(v)-1].Name != "purchase" && i != 1 {
			purchase(rng, &v[len(v)-1])
		}
		out = append(out, v...)
	}
	return out, key, user
}

// quiet makes events (a visit) those of a session that does not make its
// user active: no engagement time, no engaged session's flag, no first
// visit.
// Its referrer is a source of its own, so its session rollup cells are
// not those of the user's other sessions.
func quiet(events []protocol.Event) []protocol.Event {
	events[0].Referrer = "https://quiet.example.net/"
	for i := range events {
		events[i].EngageMs = 0
		events[i].Flags &^= protocol.FlagEngaged | protocol.FlagFirstVisit
	}
	return events
}

// TestEraseEqualsNeverStored is the erasure oracle: the same seed is
// written through the write stage into two sites, with the subject's events
// on one of them only (in rows and in packs, late on a packed day too).
// After erasing the subject there, every report of the table answers
// exactly as on the site that never held it.
func TestEraseEqualsNeverStored(t *testing.T) {
	ctx := context.Background()
	s := newStack(t)
	with, without := s.site(t, "with"), s.site(t, "without")
	now := time.Now()
	rng := rand.New(rand.NewPCG(19, 1))
	base := seed(rng, with, 30, 10, now)
	subj, key, _ := subjectEvents(rng, with, now)
	mixed := append(append([]protocol.Event{}, base...), subj...)
	sortByTime(mixed)
	s.write(t, mixed)
	s.write(t, onSite(base, without))
	s.pack(t)
	// Late events on a packed day: the subject's on one site, a seed
	// visitor's on both, so both read rows beside packs.
	lateDay := now.AddDate(0, 0, -8).Add(-90 * time.Minute)
	late := visit(rng, with, 7<<40|0x5eed, lateDay, 2, false)
	lateSubj := visit(rng, with, key, lateDay.Add(time.Minute), 2, false)
	// Both buy the same item: a late item row of a packed day besides the
	// subject's, so its item cells keep the other's amounts.
	purchase(rng, &late[1])
	purchase(rng, &lateSubj[1])
	lateSubj[1].Items = late[1].Items
	s.write(t, append(append([]protocol.Event{}, late...), lateSubj...))
	s.write(t, onSite(late, without))
	// Yesterday, sessions that do not make their users active (no
	// engagement, no first visit), of seed visitors and of the subject,
	// then, in a later derivation, active sessions of most of the same
	// users that day: the session rollup cells the user-days remember,
	// made active, or still remembered (a visitor's who does not come
	// back, and the subject's of the day before).
	y := now.UTC().Truncate(24*time.Hour).AddDate(0, 0, -1)
	var idle, active []protocol.Event
	subjectAdded := 0 // the subject's events in idle and active
	for i, visitor := range []uint64{1<<40 | 0x5eed, 2<<40 | 0x5eed, 3<<40 | 0x5eed, 98<<40 | 0x5eed, 99<<40 | 0x5eed, key} {
		idle = append(idle, quiet(visit(rng, with, visitor, y.Add(8*time.Hour+time.Duration(i)*time.Minute), 2, false))...)
		if visitor != 99<<40|0x5eed {
			active = append(active, visit(rng, with, visitor, y.Add(14*time.Hour+time.Duration(i)*time.Minute), 3, false)...)
		}
	}
	idle = append(idle, quiet(visit(rng, with, key, y.Add(-12*time.Hour), 2, false))...)
	for _, batch := range [][]protocol.Event{idle, active} {
		s.write(t, batch)
		var others []protocol.Event
		for _, e := range batch {
			if e.Visitor != key {
				others = append(others, e)
			} else {
				subjectAdded++
			}
		}
		s.write(t, onSite(others, without))
	}

	var packed int64
	if err := s.db.QueryRow(ctx, "SELECT count(*) FROM event_packs WHERE site_id = $1 AND $2 = ANY(visitor_id)", with, int64(key)).Scan(&packed); err != nil || packed == 0 {
		t.Fatalf("the subject has no packed events (%d, %v): the test would not cover packs", packed, err)
	}
	requirePackedItems(t, s, with, key)
	differs := 0
	for _, body := range reports("14daysAgo") {
		if s.report(t, with, body) != s.report(t, without, body) {
			differs++
		}
	}
	if differs == 0 {
		t.Fatal("before the erasure the sites answer alike: the subject is invisible to the reports, which proves nothing")
	}

	// A pack column a later migration adds (ecommerce's commerce ids are
	// one): filled on the subject's packs, empty on the others; the
	// rewrite keeps both in step with the rows.
	if _, err := s.db.Exec(ctx, "ALTER TABLE event_packs ADD COLUMN extra integer[] NOT NULL DEFAULT '{}'"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.Exec(ctx, "UPDATE event_packs SET extra = array_fill(7, ARRAY[events]) WHERE $1 = ANY(visitor_id)", int64(key)); err != nil {
		t.Fatal(err)
	}
	// Which users were active on which days, and the cells remembered for
	// those not active yet (dims ids differ between the sites: their
	// number): the subject's go, the others' stay as if it never was.
	userDays := func(site uint32) string {
		var out string
		if err := s.db.QueryRow(ctx, `SELECT coalesce(string_agg(day || ' ' || visitor_id || ' ' || coalesce(cardinality(cells), -1)
				|| ' ' || coalesce(cardinality(session_cells), -1), ',' ORDER BY day, visitor_id), '')
			FROM rollup_user_days WHERE site_id = $1`, site).Scan(&out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	var subjectDays int
	if err := s.db.QueryRow(ctx, "SELECT count(*) FROM rollup_user_days WHERE site_id = $1 AND visitor_id = $2", with, int64(key)).Scan(&subjectDays); err != nil || subjectDays == 0 {
		t.Fatalf("the subject has no user-days (%d, %v): the test would not cover them", subjectDays, err)
	}
	var pendingSessions, subjectPending int
	if err := s.db.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE visitor_id = $2) FROM rollup_user_days
		WHERE site_id = $1 AND session_cells IS NOT NULL`, with, int64(key)).Scan(&pendingSessions, &subjectPending); err != nil || pendingSessions < 2 || subjectPending == 0 {
		t.Fatalf("%d user-days remember session cells, %d of the subject (%v): the test would not cover them", pendingSessions, subjectPending, err)
	}
	svc := &governance.Service{Store: s.store}
	sub, err := governance.Resolve(ctx, s.store, with, governance.ClientID, subjectCookie)
	if err != nil || sub.Key != key {
		t.Fatalf("resolve: %v key %x, want %x", err, sub.Key, key)
	}
	out, err := svc.Erase(ctx, sub, "test")
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(len(subj) + len(lateSubj) + subjectAdded); out.Events != want || out.Sessions < 3 {
		t.Fatalf("erased %d events and %d sessions, want %d events and at least 3 sessions", out.Events, out.Sessions, want)
	}
	for i, body := range reports("14daysAgo") {
		got, want := s.report(t, with, body), s.report(t, without, body)
		if got != want {
			t.Errorf("report %d after the erasure:\n got %s\nwant %s", i, got, want)
		}
		if !strings.Contains(want, `"rows":[`) {
			t.Errorf("report %d has no rows, which proves nothing: %s", i, want)
		}
	}
	t.Logf("%d of %d reports differed before the erasure, none after", differs, len(reports("")))
	if got, want := userDays(with), userDays(without); got != want {
		t.Errorf("user-days after the erasure:\n got %s\nwant %s", got, want)
	}
	readFromRollups(t, s, with)
	var bad int
	if err := s.db.QueryRow(ctx, `SELECT count(*) FROM event_packs WHERE cardinality(ts) <> events
		OR cardinality(visitor_id) <> events OR cardinality(extra) NOT IN (0, events) OR 7 <> ALL(extra || 7)`).Scan(&bad); err != nil || bad != 0 {
		t.Fatalf("%d packs with arrays out of step after the rewrite (%v)", bad, err)
	}
	data, err := s.store.SubjectData(ctx, with, []uint64{key})
	if err != nil || len(data.Events)+len(data.Sessions)+len(data.Commerce)+len(data.Items) != 0 {
		t.Fatalf("after the erasure the subject still has %d events, %d sessions, %d commerce rows and %d items (%v)",
			len(data.Events), len(data.Sessions), len(data.Commerce), len(data.Items), err)
	}
	// The audit trail holds the erasure and still verifies.
	v, err := s.store.VerifyAudit(ctx)
	if err != nil || v.Break != nil || out.Audit.ID == 0 || out.Audit.Action != "gdpr.erase" {
		t.Fatalf("audit after erasure: %+v %v, row %+v", v, err, out.Audit)
	}
}

// readFromRollups checks that the reports of amounts, by session traffic
// source, by landing page and of sessions by page are answered from
// site's rollups, so that the oracle compared the erasure's corrections of
// the rollups' amounts, of the rows by session traffic source
// (postgres.RollupSessionTraffic), by landing page (RollupLandingPage) and
// of the sessions sketches by page (RollupPageSessions,
// RollupTitleSessions), not the rows the erasure deleted: without those
// rollup values the reports answer differently. It spoils the site's
// rollups.
func readFromRollups(t *testing.T, s *stack, site uint32) {
	t.Helper()
	ctx := context.Background()
	uses := func(body map[string]any, names ...string) bool {
		raw, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if strings.Contains(string(raw), `"`+n+`"`) {
				return true
			}
		}
		return false
	}
	eventReport := func(names ...string) func(map[string]any) bool {
		return func(body map[string]any) bool { return uses(body, names...) && !uses(body, "sessions") }
	}
	for _, c := range []struct {
		what, spoil string
		pick        func(map[string]any) bool
	}{
		{"amounts", "UPDATE %s SET amounts = NULL WHERE site_id = $1", eventReport("totalRevenue", "itemRevenue")},
		{"rows by session traffic source", "DELETE FROM %s WHERE site_id = $1 AND kind = 102", eventReport("sessionSource", "sessionMedium")},
		{"rows by landing page", "DELETE FROM %s WHERE site_id = $1 AND kind = 103", eventReport("landingPage")},
		{"sessions sketches by page", "DELETE FROM %s WHERE site_id = $1 AND kind IN (104, 105)", func(body map[string]any) bool {
			return uses(body, "sessions") && uses(body, "pagePath", "pageTitle")
		}},
	} {
		var bodies []map[string]any
		var before []string
		for _, body := range reports("14daysAgo") {
			if c.pick(body) {
				bodies, before = append(bodies, body), append(before, s.report(t, site, body))
			}
		}
		if len(bodies) == 0 {
			t.Fatalf("no report reads %s", c.what)
		}
		for _, table := range []string{"rollup_days", "rollup_packs"} {
			if _, err := s.db.Exec(ctx, fmt.Sprintf(c.spoil, table), site); err != nil {
				t.Fatal(err)
			}
		}
		for i, body := range bodies {
			if s.report(t, site, body) == before[i] {
				t.Errorf("report %v answers alike without the rollups' %s: it does not read them, and the oracle proves nothing of them", body, c.what)
			}
		}
	}
}

// TestLateEventsOfErasedSubjectAreDropped: after an erasure, the subject's
// events still queued at an agent (by client id, or by user_id under
// another device's key) are not stored, while other visitors' events of
// the same batch are.
func TestLateEventsOfErasedSubjectAreDropped(t *testing.T) {
	ctx := context.Background()
	s := newStack(t)
	site := s.site(t, "late")
	now := time.Now()
	rng := rand.New(rand.NewPCG(19, 2))
	subj, key, user := subjectEvents(rng, site, now)
	s.write(t, subj)
	svc := &governance.Service{Store: s.store}
	if _, err := svc.Erase(ctx, governance.Subject{Site: site, Identity: governance.ClientID, Key: key}, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Erase(ctx, governance.Subject{Site: site, Identity: governance.UserID, Key: user}, "test"); err != nil {
		t.Fatal(err)
	}
	late := visit(rng, site, key, now.Add(-time.Hour), 3, false)                    // queued at an agent
	otherDevice := visit(rng, site, 0xdead<<20, now.Add(-30*time.Minute), 2, false) // same user, another device
	for i := range otherDevice {
		otherDevice[i].User = user
	}
	bystander := visit(rng, site, 0xbeef<<20, now.Add(-20*time.Minute), 4, true)
	batch := append(append(append([]protocol.Event{}, late...), otherDevice...), bystander...)
	// The node's copy for realtime counts at staging leaves them out too.
	tombs := governance.NewTombstones(s.store, time.Second, nil)
	if err := tombs.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if kept := tombs.Filter(batch); len(kept) != len(bystander) || kept[0].Visitor != bystander[0].Visitor {
		t.Fatalf("realtime filter kept %d events, want the bystander's %d", len(kept), len(bystander))
	}
	s.write(t, batch)
	var stored, total int64
	if err := s.db.QueryRow(ctx, "SELECT count(*) FILTER (WHERE visitor_id IN ($2, $3)), count(*) FROM events WHERE site_id = $1",
		site, int64(key), int64(0xdead<<20)).Scan(&stored, &total); err != nil {
		t.Fatal(err)
	}
	if stored != 0 || total != int64(len(bystander)) {
		t.Fatalf("after the batch: %d events of the erased subject stored, %d in all; want 0 and the bystander's %d", stored, total, len(bystander))
	}
}

// TestExportHoldsExactlyTheSubject: an export lists every event and
// session of the subject, with values, parameters and user properties, and
// nothing of anyone else; CSV holds the same rows; an encrypted export
// opens with its passphrase only.
func TestExportHoldsExactlyTheSubject(t *testing.T) {
	ctx := context.Background()
	s := newStack(t)
	site := s.site(t, "export")
	now := time.Now()
	rng := rand.New(rand.NewPCG(19, 3))
	base := seed(rng, site, 20, 10, now)
	subj, key, _ := subjectEvents(rng, site, now)
	mixed := append(append([]protocol.Event{}, base...), subj...)
	sortByTime(mixed)
	s.write(t, mixed)
	s.pack(t)
	requirePackedItems(t, s, site, key)

	svc := &governance.Service{Store: s.store}
	sub, err := governance.Resolve(ctx, s.store, site, governance.ClientID, "1234567890.1764000000") // a bare client id works too
	if err != nil {
		t.Fatal(err)
	}
	e, err := svc.Export(ctx, sub, "test")
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Events) != len(subj) {
		t.Fatalf("export holds %d events, the subject has %d", len(e.Events), len(subj))
	}
	want := map[int64]protocol.Event{}
	for _, ev := range subj {
		want[ev.TimeMicros] = ev
	}
	withProps := 0
	for _, ev := range e.Events {
		w, ok := want[ev.Time.UnixMicro()]
		if !ok || ev.Key != key || ev.Name != w.Name || ev.Dims["page_path"] != w.Path || ev.Dims["country"] != w.Country ||
			ev.Dims["browser"] != w.Browser {
			t.Fatalf("exported event %+v is not one of the subject's (match %v, %+v)", ev, ok, w)
		}
		delete(want, ev.Time.UnixMicro())
		if ev.UserProps["plan"] == "pro" {
			withProps++
		}
	}
	if len(want) != 0 || withProps != 6 {
		t.Fatalf("%d subject events missing from the export; %d with user properties, want 6", len(want), withProps)
	}
	if len(e.Sessions) != 3 {
		t.Fatalf("export holds %d sessions, want 3", len(e.Sessions))
	}
	for _, ss := range e.Sessions {
		if ss.Key != key {
			t.Fatalf("exported session %+v is someone else's", ss)
		}
	}
	// The subject's purchases: their amounts and items, nobody else's.
	var purchases []protocol.Event
	for _, ev := range subj {
		if ev.Name == "purchase" {
			purchases = append(purchases, ev)
		}
	}
	if len(purchases) == 0 || len(e.Commerce) != len(purchases) || len(e.Items) != len(purchases) {
		t.Fatalf("export holds %d commerce rows and %d items; the subject made %d purchases of one item each", len(e.Commerce), len(e.Items), len(purchases))
	}
	for i, p := range purchases {
		c, it := e.Commerce[i], e.Items[i]
		if c.Key != key || c.Name != "purchase" || c.Revenue != p.Value || c.TransactionID != p.TransactionID || c.Currency != "USD" ||
			!c.Time.Equal(time.UnixMicro(p.TimeMicros)) {
			t.Errorf("commerce row %+v, want the purchase %+v", c, p)
		}
		if it.Key != key || it.Dims["item_name"] != p.Items[0].Name || it.Dims["item_id"] != p.Items[0].ID || it.Quantity != 1 || it.Revenue != p.Value {
			t.Errorf("item %+v, want the purchase's %+v", it, p.Items[0])
		}
	}
	var buf bytes.Buffer
	if err := e.WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if n := len(e.Events) + len(e.Sessions) + len(e.Commerce) + len(e.Items); err != nil || len(recs) != 1+n {
		t.Fatalf("csv: %d records (%v), want header + %d", len(recs), err, n)
	}
	items := 0
	for _, r := range recs {
		if r[0] == "item" && slices.Contains(r, purchases[0].Items[0].Name) {
			items++
		}
	}
	if items == 0 {
		t.Fatalf("csv has no item record naming %q", purchases[0].Items[0].Name)
	}
	buf.Reset()
	if err := e.WriteJSON(&buf); err != nil || !strings.Contains(buf.String(), "customer-4711") || !strings.Contains(buf.String(), "cookieless") {
		t.Fatalf("json export lacks the subject's page or the note on cookieless visitors (%v)", err)
	}
	sealed, err := governance.Encrypt(buf.Bytes(), []byte("correct horse battery"))
	if err != nil || bytes.Contains(sealed, []byte("customer-4711")) {
		t.Fatalf("encrypt: %v (or the plain text shows)", err)
	}
	if _, err := governance.Decrypt(sealed, []byte("wrong horse battery")); !errors.Is(err, governance.ErrDecrypt) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	plain, err := governance.Decrypt(sealed, []byte("correct horse battery"))
	if err != nil || !bytes.Equal(plain, buf.Bytes()) {
		t.Fatalf("decrypt: %v", err)
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := governance.Decrypt(sealed, []byte("correct horse battery")); !errors.Is(err, governance.ErrDecrypt) {
		t.Fatalf("altered file: %v", err)
	}
}

// requirePackedItems fails the test unless key has item rows both in
// item_packs and in event_items on site, so what it checks covers both.
func requirePackedItems(t *testing.T, s *stack, site uint32, key uint64) {
	t.Helper()
	var packed, rows int64
	if err := s.db.QueryRow(context.Background(), `SELECT
			(SELECT count(*) FROM item_packs p CROSS JOIN LATERAL unnest(p.visitor_id) v WHERE p.site_id = $1 AND v = $2),
			(SELECT count(*) FROM event_items WHERE site_id = $1 AND visitor_id = $2)`, int32(site), int64(key)).Scan(&packed, &rows); err != nil || packed == 0 || rows == 0 {
		t.Fatalf("the subject has %d packed items and %d item rows (%v): the test would not cover both", packed, rows, err)
	}
}

// TestEraseFromDenseCellsEqualsNeverStored is the erasure oracle on a busy
// day, whose big cells hold dense sketches: 20 000 visitors on a packed
// day, 9 000 of them in one country and 9 500 from one search engine
// (dense sketches near the size where a sketch turns dense, which the
// erasure recomputes from the cell's rows: the search engine's is a cell
// of RollupSessionTraffic, whose events are found by their sessions), and
// none with a hash in the subject's register, so the subject alone set
// that register of the day's dense cells and the erasure lowers it, but
// for one competitor sharing the subject's register in the cells of all
// events and of direct sessions (RollupSessionTraffic). The subject's own
// page is a cell of its own (sparse, emptied). Reports after the erasure
// equal those of the site that never held the subject.
func TestEraseFromDenseCellsEqualsNeverStored(t *testing.T) {
	ctx := context.Background()
	s := newStack(t)
	with, without := s.site(t, "dense-with"), s.site(t, "dense-without")
	h, err := identity.New(with, secret)
	if err != nil {
		t.Fatal(err)
	}
	cid, _ := identity.ClientIDFromCookie(subjectCookie)
	key := h.Client(cid)
	register := postgres.VisitorHash(key) >> (64 - postgres.RollupPrecision)
	day := time.Now().AddDate(0, 0, -6)
	day = time.Date(day.Year(), day.Month(), day.Day(), 8, 0, 0, 0, time.UTC)
	var base, later []protocol.Event
	for v := uint64(1); len(base) < 20_000; v++ {
		visitor := v<<40 | 0xd15e
		if postgres.VisitorHash(visitor)>>(64-postgres.RollupPrecision) == register {
			continue // the subject alone sets its register
		}
		country, referrer := "DE", ""
		if len(base) >= 9000 {
			country = "FR"
		}
		if len(base) >= 10_500 {
			referrer = "https://www.google.com/"
		}
		e := protocol.Event{Site: with, TimeMicros: day.Add(time.Duration(len(base)) * 2 * time.Second).UnixMicro(), Referrer: referrer,
			Name: "page_view", Visitor: visitor, Host: "www.example.com", Path: paths[len(base)%len(paths)], Title: "Title",
			Country: country, City: "City", Browser: browsers[len(base)%len(browsers)], OS: "Linux", Device: "desktop",
			Language: "en-us", EngageMs: int64(len(base) % 5000), Flags: protocol.FlagSessionStart | protocol.FlagFirstVisit}
		if len(base)%4 == 1 {
			// Quiet here, active in a later session of the day elsewhere:
			// the recomputed cells count it active all the same.
			e.EngageMs, e.Flags = 0, protocol.FlagSessionStart
			later = append(later, protocol.Event{Site: with, TimeMicros: day.Add(time.Duration(len(base))*2*time.Second + time.Hour).UnixMicro(),
				Name: "user_engagement", Visitor: visitor, Host: "www.example.com", Path: "/later", Title: "Later", Country: "AT", City: "City",
				Browser: "Chrome", OS: "Linux", Device: "desktop", Language: "en-us", EngageMs: 1000, Flags: protocol.FlagSessionStart})
		}
		base = append(base, e)
	}
	base = append(base, later...)
	// One competitor: a visitor whose hash falls in the subject's register,
	// in a direct session as the subject's (the dense cell of its session
	// traffic source) and in the all-events cell, but on no page view, host
	// or country of the subject's, so that register of those stays the
	// subject's alone. The erasure keeps the competitor's value there only
	// if it finds the competitor's session traffic.
	for v := uint64(1); ; v++ {
		competitor := v<<40 | 0xc0
		if postgres.VisitorHash(competitor)>>(64-postgres.RollupPrecision) != register {
			continue
		}
		base = append(base, protocol.Event{Site: with, TimeMicros: day.Add(time.Hour).UnixMicro(), Name: "competitor_event", Visitor: competitor,
			Host: "shop.example.com", Path: "/shop", Title: "Title", Country: "PT", City: "City", Browser: "Chrome", OS: "Linux",
			Device: "desktop", Language: "en-us", Flags: protocol.FlagSessionStart | protocol.FlagFirstVisit})
		break
	}
	sortByTime(base)
	rng := rand.New(rand.NewPCG(19, 4))
	subj := visit(rng, with, key, day.Add(3*time.Hour), 5, true)
	subj[0].Referrer = "" // direct
	// A second session, from the search engine.
	again := visit(rng, with, key, day.Add(5*time.Hour), 3, false)
	again[0].Referrer = "https://www.google.com/"
	subj = append(subj, again...)
	for i := range subj {
		subj[i].Country = "DE"
		if i == 2 {
			subj[i].Path = "/account/customer-4711"
		}
	}
	mixed := append(append([]protocol.Event{}, base...), subj...)
	sortByTime(mixed)
	s.write(t, mixed)
	s.write(t, onSite(base, without))
	s.pack(t)

	differs := 0
	for _, body := range reports("14daysAgo") {
		if s.report(t, with, body) != s.report(t, without, body) {
			differs++
		}
	}
	if differs == 0 {
		t.Fatal("before the erasure the sites answer alike, which proves nothing")
	}
	svc := &governance.Service{Store: s.store}
	out, err := svc.Erase(ctx, governance.Subject{Site: with, Identity: governance.ClientID, Key: key}, "test")
	if err != nil {
		t.Fatal(err)
	}
	if out.Events != int64(len(subj)) || out.PackRows == 0 {
		t.Fatalf("erased %d events in %d packs, want %d in at least one", out.Events, out.PackRows, len(subj))
	}
	// Each way of correcting a sketch was taken.
	if k := out.Sketches; k.Dense == 0 || k.Sparse == 0 || k.Recomputed == 0 {
		t.Fatalf("sketch corrections %+v: a case is not covered", k)
	}
	for i, body := range reports("14daysAgo") {
		got, want := s.report(t, with, body), s.report(t, without, body)
		if got != want {
			t.Errorf("report %d after the erasure:\n got %s\nwant %s", i, got, want)
		}
	}
	t.Logf("%d of %d reports differed before the erasure, none after; sketches %+v", differs, len(reports("")), out.Sketches)
}

// TestSubjectRequestsReachQuarantinedRows: a staged row no derivation
// could take (quarantined) holds the subject's events too: an export
// lists them apart (in no report), in JSON and CSV, and an erasure takes
// them out of the row, leaving everyone else's.
func TestSubjectRequestsReachQuarantinedRows(t *testing.T) {
	ctx := context.Background()
	s := newStack(t)
	site := s.site(t, "quarantine")
	sub, err := governance.Resolve(ctx, s.store, site, governance.ClientID, "1234567890.1764000000")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	events := []protocol.Event{
		{Site: site, Visitor: sub.Key, TimeMicros: now.UnixMicro(), Name: "page_view", Path: "/private", Country: "DE"},
		{Site: site, Visitor: 77, TimeMicros: now.UnixMicro(), Name: "page_view", Path: "/other"},
		{Site: site, Visitor: sub.Key, TimeMicros: now.Add(time.Second).UnixMicro(), Name: "sign_up", Params: map[string]string{"plan": "pro"}},
	}
	if _, err := s.db.Exec(ctx, `INSERT INTO staged_quarantine (site_id, id, events, payload, staged_at, reason)
		VALUES ($1, 1, 3, $2, now(), 'test')`, int32(site), protocol.EncodeEvents(events)); err != nil {
		t.Fatal(err)
	}
	svc := &governance.Service{Store: s.store}
	e, err := svc.Export(ctx, sub, "test")
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Events) != 0 || len(e.Quarantined) != 2 || e.Quarantined[0].Dims["page_path"] != "/private" ||
		e.Quarantined[0].Dims["country"] != "DE" || e.Quarantined[1].Params["plan"] != "pro" || e.Quarantined[1].Key != sub.Key {
		t.Fatalf("export: %d events, quarantined %+v; want the subject's two quarantined events", len(e.Events), e.Quarantined)
	}
	var buf bytes.Buffer
	if err := e.WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil || len(recs) != 3 || recs[1][0] != "quarantined_event" || !slices.Contains(recs[1], "/private") {
		t.Fatalf("csv: %q (%v)", recs, err)
	}
	out, err := svc.Erase(ctx, sub, "test")
	if err != nil {
		t.Fatal(err)
	}
	if out.Quarantined != 2 || out.Unsearched != 0 {
		t.Fatalf("erasure took %d quarantined events (%d rows unsearched), want 2 (0)", out.Quarantined, out.Unsearched)
	}
	if e, err = svc.Export(ctx, sub, "test"); err != nil || len(e.Quarantined) != 0 {
		t.Fatalf("export after the erasure: %+v (%v), want nothing quarantined", e, err)
	}
	rows, err := s.store.QuarantinedRows(ctx, site)
	if err != nil || len(rows) != 1 || rows[0].Events != 1 {
		t.Fatalf("quarantined after the erasure: %+v (%v), want the other visitor's event", rows, err)
	}
}
