package write

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/avila-analytics/avila/aggregator/sessions"
	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
)

// siteMemoryMax bounds the visitors remembered per site, and
// memoryMax those of every site a Writer derives together: a node
// deriving many busy sites would otherwise hold a full memory of each.
const (
	siteMemoryMax = 1 << 18
	memoryMax     = 1 << 19
)

// siteSessions are the latest sessions of a site's recently active
// visitors, as of the site's derivation gen, which this node ran. Only the
// derivation holding the site's lock uses it.
type siteSessions struct {
	site uint32
	gen  int64
	mem  *sessions.Memory
	// addedPer is how many events (session_start, first_visit) the
	// site's last chunk added per staged event: it sizes the next chunks
	// (chunkEvents), so a chunk's events, staged and added, stay near
	// Config.MaxEvents whatever the traffic. It ranges from none (every
	// session continued) to two (every hit a new visitor's).
	addedPer float64
	// measured: addedPer is a chunk's, not firstAddedPer.
	measured bool
	// used orders the sites by their last derivation on this node
	// (Writer.uses when it began), for boundMemory.
	used int64
}

// roomAddedPer is the share of added events a chunk of Config.MaxEvents
// staged events has room for; firstAddedPer is addedPer before the site's
// first chunk on this node: the most a chunk can add (every event a new
// visitor's first), so that a first chunk never holds more than the bound.
const (
	roomAddedPer  = 0.25
	firstAddedPer = 2
)

// chunkEvents is how many staged events the site's next chunk takes: max,
// or fewer, so that with the events it is expected to add it holds no
// more than max and a quarter.
func (s *siteSessions) chunkEvents(max int) int {
	if s.addedPer <= roomAddedPer {
		return max
	}
	return int(float64(max)*(1+roomAddedPer)/(1+s.addedPer)) + 1
}

// expectAdded is how many events a chunk of staged events is expected
// to add, as far as a chunk of the site measured it (0 before).
func (s *siteSessions) expectAdded(staged int) int {
	if !s.measured {
		return 0
	}
	return int(float64(staged) * s.addedPer)
}

// chunkAdded records that a chunk of staged events added added.
func (s *siteSessions) chunkAdded(staged, added int) {
	if staged > 0 {
		s.addedPer, s.measured = float64(added)/float64(staged), true
	}
}

// siteSessions returns the memory of site, emptied unless this node ran
// the derivation of generation gen (the one before the current); its
// measure of the events chunks add (addedPer) stays.
func (w *Writer) siteSessions(site uint32, gen int64) *siteSessions {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.sites[site]
	if s == nil || s.gen != gen {
		old := s
		s = &siteSessions{site: site, gen: -1, mem: sessions.NewMemory(siteMemoryMax, nil), addedPer: firstAddedPer}
		switch {
		case w.cfg.NoDerivedEvents:
			s.addedPer, s.measured = 0, true
		case old != nil:
			// Another node derived the site since: its traffic is the same.
			s.addedPer, s.measured = old.addedPer, old.measured
		}
		w.sites[site] = s
	}
	w.uses++
	s.used = w.uses
	w.boundMemory(s)
	return s
}

// boundMemory empties the memories of the sites derived least recently,
// other than keep's, while those of all sites hold more than
// Writer.memoryMax visitors. An empty memory is always right: its
// visitors' sessions are read from the database. The caller holds mu.
func (w *Writer) boundMemory(keep *siteSessions) {
	total := 0
	for _, s := range w.sites {
		total += s.mem.Len()
	}
	if total <= w.memoryMax {
		return
	}
	others := make([]*siteSessions, 0, len(w.sites))
	for _, s := range w.sites {
		if s != keep && s.mem.Len() > 0 {
			others = append(others, s)
		}
	}
	slices.SortFunc(others, func(a, b *siteSessions) int { return cmp.Compare(a.used, b.used) })
	// keep's own memory is bounded by siteMemoryMax.
	for _, s := range others {
		if total <= w.memoryMax {
			return
		}
		total -= s.mem.Len()
		s.mem = sessions.NewMemory(siteMemoryMax, nil)
	}
}

// forgetSessions drops site's memory: a derivation whose commit failed
// may or may not have committed.
func (w *Writer) forgetSessions(site uint32) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.sites, site)
}

// latest fills latest and found (as long as visitors) with the
// remembered latest session of each visitor it holds.
func (s *siteSessions) latest(visitors []uint64, latest []sessions.Session, found []bool) {
	s.mem.Latest(s.site, visitors, latest, found)
}

// commit records the visitors' latest sessions after derivation gen
// committed. A visitor whose events only touched an older session keeps
// what is remembered. latest is an empty map to build them in, emptied
// again once they are recorded.
func (s *siteSessions) commit(gen int64, rows []postgres.SessionRow, known map[sessions.Key][]sessions.Session, latest map[sessions.Key]sessions.Session) {
	defer clear(latest)
	for _, r := range rows {
		k := sessions.Key{Site: uint32(r.Site), Visitor: uint64(r.Visitor)}
		v := sessions.Session{ID: r.ID, Start: r.TS.UnixMicro(), Last: r.Last.UnixMicro(), FirstSource: r.FirstSource}
		if old, ok := latest[k]; ok && old.Start > v.Start {
			continue
		}
		newer := false
		for _, o := range known[k] {
			if o.Start > v.Start {
				newer = true
			} else if o.Start == v.Start && o.ID == v.ID {
				v.Last = max(v.Last, o.Last)
			}
		}
		if !newer {
			latest[k] = v
		}
	}
	_ = s.mem.Put(context.Background(), latest) // Memory never fails
	s.gen = gen
}

// sessionRows builds the rows of the assigned sessions from the events'
// rows (dims resolved) and the traffic ids of their first events. A
// session that starts here gets its traffic source on its first event row
// too, as a sender's session_start has it, so event reports and
// RebuildSessions find it whoever cut the session.
//
// A session without an earlier one of its visitor within a day takes its
// own source as the first user source, unless the visitor is a persistent
// user known from before with a stored first source (known: AddKnownUsers),
// as GA4's firstUserSource holds for a user however long after; the first
// sources of users first seen in this derivation (added) are returned, to
// be stored. Both are made in sc, over what it held.
func sessionRows(events []protocol.Event, res *postgres.Resolved, as *sessions.Assignment, newUser []bool,
	added map[uint64]bool, known map[uint64]int32, sc *rowsScratch) (out []postgres.SessionRow, firstSources map[uint64]int32) {
	rows := res.Rows
	out = grownTo(sc.sessions, len(as.Sessions))
	clear(out)
	sc.sessions = out
	firstSources, firstStart := emptied(&sc.firstSources), emptied(&sc.firstStart)
	for i := range as.Sessions {
		a := &as.Sessions[i]
		r := &out[i]
		first := &rows[a.Events[0]]
		traffic := &res.Traffic[res.TrafficOf[a.Events[0]]]
		r.Site, r.Visitor, r.ID = first.Site, first.Visitor, a.ID
		r.TS, r.Last = time.UnixMicro(a.Start).UTC(), time.UnixMicro(a.Last).UTC()
		r.First, r.Client = &first.Dims, first.Client
		r.TrafficProfile = traffic.Profile
		if !a.Existing && first.Traffic == 0 {
			first.Traffic = traffic.Profile
			for _, k := range postgres.TrafficProfile.Kinds {
				first.Dims[k-1] = traffic.Dims[k-1]
			}
		}
		for _, ei := range a.Events {
			e, row := &events[ei], &rows[ei]
			r.Events++
			r.Engage += int64(row.Engage)
			r.Flags |= int16(e.Flags)
			if e.Flags&protocol.FlagKeyEvent != 0 {
				r.KeyEvents++
			}
			if row.PageView {
				r.PageViews++
				if r.Landing == 0 {
					r.Landing = row.Dims[postgres.DimPagePath-1]
				}
				if row.Dims[postgres.DimPagePath-1] != 0 {
					r.Exit = row.Dims[postgres.DimPagePath-1]
				}
			}
		}
		if newUser[i] {
			r.Flags |= postgres.SessionFlagNew
		}
		switch {
		case a.FirstSourceOf >= 0: // an earlier session of these events
			r.FirstSource = out[a.FirstSourceOf].FirstSource
		case !a.Prior && !a.Existing:
			r.FirstSource = traffic.Dims[postgres.DimSource-1]
			if src, ok := known[a.Visitor]; ok {
				r.FirstSource = src
			} else if added[a.Visitor] && r.FirstSource != 0 {
				if t, ok := firstStart[a.Visitor]; !ok || a.Start < t { // its earliest session here
					firstStart[a.Visitor] = a.Start
					firstSources[a.Visitor] = r.FirstSource
				}
			}
		default:
			r.FirstSource = a.FirstSource
		}
	}
	return out, firstSources
}
