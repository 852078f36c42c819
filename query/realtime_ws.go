package query

import (
	"cmp"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/avila-analytics/avila/query/engine/realtime"
	"github.com/avila-analytics/avila/query/plan"
	"github.com/avila-analytics/avila/storage/redis"
)

// Realtime WebSocket defaults.
const (
	defaultMaxSockets   = 1000
	defaultPushInterval = time.Second
	defaultWriteTimeout = 5 * time.Second
	summaryTop          = 10 // entries in topPages and topCountries
)

// SocketOptions configure NewRealtimeSocket. The zero value works.
type SocketOptions struct {
	Options
	// MaxSockets bounds the WebSockets open on this node; one more is
	// answered 503. 0: 1000.
	MaxSockets int
	// Interval is how often summaries are pushed. 0: one second.
	Interval time.Duration
	// WriteTimeout bounds one write to a client; a client that cannot take
	// a summary in that time is disconnected. 0: five seconds.
	WriteTimeout time.Duration
	// Recheck is how often an open socket's key is checked again: a
	// socket whose key was revoked (or lost the property) is closed with
	// 1008 policy violation at the next check. 0: two seconds.
	Recheck time.Duration
}

// RealtimeSummary is what the realtime WebSocket pushes: the property's last
// 30 minutes as the dashboard shows them.
type RealtimeSummary struct {
	Property        string `json:"property"` // properties/{id}
	ActiveUsers     int64  `json:"activeUsers"`
	EventCount      int64  `json:"eventCount"`
	ScreenPageViews int64  `json:"screenPageViews"`
	// Minutes has RealtimeWindow entries, index = minutesAgo.
	Minutes      []SummaryMinute `json:"minutes"`
	TopPages     []SummaryTop    `json:"topPages"`     // by unifiedScreenName, most views first
	TopCountries []SummaryTop    `json:"topCountries"` // by country, most active users first
}

// SummaryMinute is one minute of a RealtimeSummary.
type SummaryMinute struct {
	MinutesAgo      int   `json:"minutesAgo"`
	ActiveUsers     int64 `json:"activeUsers"`
	EventCount      int64 `json:"eventCount"`
	ScreenPageViews int64 `json:"screenPageViews"`
}

// SummaryTop is one page or country of a RealtimeSummary.
type SummaryTop struct {
	Name            string `json:"name"`
	ActiveUsers     int64  `json:"activeUsers"`
	EventCount      int64  `json:"eventCount"`
	ScreenPageViews int64  `json:"screenPageViews"`
}

// RealtimeSocket serves GET /v1/realtime/ws?property=ID: a WebSocket that
// receives a RealtimeSummary (JSON text message) on connect and then every
// Interval while Run runs. A summary is recomputed when the source reports a
// commit for the property (on any node, through Redis pub/sub) or the
// minute turns; otherwise the last one is sent again.
//
// Auth: the API key as "Authorization: Bearer <key>", or, since browsers
// cannot set headers on a WebSocket, as the key query parameter
// (?property=1&key=…). Errors before the upgrade are GA4 error JSON (401,
// 403, 404, 400; 503 when the node holds MaxSockets already). Browsers may
// connect from the page's own origin only (the aggregator serves the
// dashboard); other clients send no Origin and are not affected.
type RealtimeSocket struct {
	h        *handler
	src      realtime.Source
	max      int
	interval time.Duration
	writeTO  time.Duration
	recheck  time.Duration

	mu    sync.Mutex
	n     int
	sites map[uint32]*siteFeed
	done  chan struct{} // closed when Run returns: sockets close
	once  sync.Once
}

// siteFeed is one property's sockets and its last summary.
type siteFeed struct {
	clients map[*socketClient]struct{}
	loc     *time.Location // the property's time zone, as its latest socket found it
	dirty   bool
	minute  int64  // Window.Now of last
	last    []byte // last summary, JSON
}

type socketClient struct {
	send chan []byte // latest summary; a slow client skips older ones
}

// NewRealtimeSocket makes the WebSocket handler; see RealtimeSocket. Run
// must run for summaries to be pushed after the first.
func NewRealtimeSocket(opts SocketOptions, pool *pgxpool.Pool, keys KeyLookup, src realtime.Source) *RealtimeSocket {
	return newRealtimeSocket(opts, pool, keys, src)
}

func newRealtimeSocket(opts SocketOptions, d db, keys KeyLookup, src realtime.Source) *RealtimeSocket {
	s := &RealtimeSocket{h: newHandler(opts.Options, d, keys), src: src, max: opts.MaxSockets,
		interval: opts.Interval, writeTO: opts.WriteTimeout, sites: map[uint32]*siteFeed{}, done: make(chan struct{})}
	if s.max <= 0 {
		s.max = defaultMaxSockets
	}
	if s.interval <= 0 {
		s.interval = defaultPushInterval
	}
	if s.writeTO <= 0 {
		s.writeTO = defaultWriteTimeout
	}
	s.recheck = opts.Recheck
	if s.recheck <= 0 {
		s.recheck = defaultRecheck
	}
	src.Watch(s.changed)
	return s
}

// changed marks a property's summary stale.
func (s *RealtimeSocket) changed(site uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := s.sites[site]; f != nil {
		f.dirty = true
	}
}

// Run pushes summaries every Interval until ctx ends, then closes every
// socket.
func (s *RealtimeSocket) Run(ctx context.Context) {
	defer s.once.Do(func() { close(s.done) })
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.push(ctx)
		}
	}
}

// push sends every property's summary to its sockets, recomputing the ones
// that changed.
func (s *RealtimeSocket) push(ctx context.Context) {
	s.mu.Lock()
	sites := make([]uint32, 0, len(s.sites))
	for id := range s.sites {
		sites = append(sites, id)
	}
	s.mu.Unlock()
	for _, id := range sites {
		msg, err := s.summary(ctx, id, false)
		if err != nil {
			s.h.log.WarnContext(ctx, "realtime socket: summary failed", "site", id, "err", err)
			continue
		}
		s.mu.Lock()
		if f := s.sites[id]; f != nil {
			for c := range f.clients {
				offer(c.send, msg)
			}
		}
		s.mu.Unlock()
	}
}

// offer puts msg in a one-slot channel, replacing a message not yet taken.
func offer(ch chan []byte, msg []byte) {
	select {
	case <-ch:
	default:
	}
	select {
	case ch <- msg:
	default:
	}
}

// summary is the property's summary as JSON: the cached one unless force,
// the property changed, or the minute turned.
func (s *RealtimeSocket) summary(ctx context.Context, id uint32, force bool) ([]byte, error) {
	now := s.h.now().Unix() / 60
	s.mu.Lock()
	f := s.sites[id]
	if !force && f != nil && !f.dirty && f.minute == now && f.last != nil {
		msg := f.last
		s.mu.Unlock()
		return msg, nil
	}
	loc := time.UTC
	if f != nil {
		f.dirty = false // a change from now on marks it again
		if f.loc != nil {
			loc = f.loc
		}
	}
	s.mu.Unlock()
	w, err := s.src.Window(ctx, id)
	if err != nil {
		return nil, err
	}
	msg, err := json.Marshal(summarize(id, w, loc))
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if f := s.sites[id]; f != nil {
		f.minute, f.last = w.Now, msg
	}
	s.mu.Unlock()
	return msg, nil
}

// summarize computes a RealtimeSummary from w; loc is the property's time
// zone (redis.Window.ActiveVisitors).
func summarize(id uint32, w redis.Window, loc *time.Location) *RealtimeSummary {
	active := w.ActiveVisitors(loc)
	sum := &RealtimeSummary{Property: "properties/" + strconv.FormatUint(uint64(id), 10),
		ActiveUsers: int64(len(active)), Minutes: make([]SummaryMinute, redis.RealtimeWindow)}
	for i := range sum.Minutes {
		sum.Minutes[i].MinutesAgo = i
	}
	pages, countries := map[string]*realtime.Acc{}, map[string]*realtime.Acc{}
	for _, m := range w.Minutes {
		ago := w.Now - m.Minute
		if ago < 0 || ago >= redis.RealtimeWindow {
			continue
		}
		acc := realtime.NewAcc()
		for c, n := range m.Cells {
			acc.Add(&c, n, active)
			for _, g := range []struct {
				m   map[string]*realtime.Acc
				key string
			}{{pages, realtime.NotSet(c.Screen)}, {countries, realtime.CountryName(c.Country)}} {
				a := g.m[g.key]
				if a == nil {
					a = realtime.NewAcc()
					g.m[g.key] = a
				}
				a.Add(&c, n, active)
			}
		}
		mm := acc.Metrics()
		sum.Minutes[ago].ActiveUsers, sum.Minutes[ago].EventCount, sum.Minutes[ago].ScreenPageViews =
			mm[realtime.ActiveUsers], mm[realtime.EventCount], mm[realtime.ScreenPageViews]
		sum.EventCount += mm[realtime.EventCount]
		sum.ScreenPageViews += mm[realtime.ScreenPageViews]
	}
	sum.TopPages = topOf(pages, realtime.ScreenPageViews)
	sum.TopCountries = topOf(countries, realtime.ActiveUsers)
	return sum
}

// topOf is the summaryTop entries of m with the most by, then most events,
// then by name.
func topOf(m map[string]*realtime.Acc, by realtime.Metric) []SummaryTop {
	out := make([]SummaryTop, 0, len(m))
	byName := map[string][realtime.MetricCount]int64{}
	for name, a := range m {
		mm := a.Metrics()
		byName[name] = mm
		out = append(out, SummaryTop{Name: name, ActiveUsers: mm[realtime.ActiveUsers], EventCount: mm[realtime.EventCount], ScreenPageViews: mm[realtime.ScreenPageViews]})
	}
	slices.SortFunc(out, func(a, b SummaryTop) int {
		ma, mb := byName[a.Name], byName[b.Name]
		return cmp.Or(cmp.Compare(mb[by], ma[by]), cmp.Compare(mb[realtime.EventCount], ma[realtime.EventCount]), cmp.Compare(a.Name, b.Name))
	})
	return out[:min(len(out), summaryTop)]
}

// ServeHTTP authorizes the request, upgrades it and serves the socket until
// the client goes, a write fails or Run ends.
func (s *RealtimeSocket) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, key, loc, err := s.authorize(r)
	if err != nil {
		writeError(w, s.h.apiError(r.Context(), r.Context(), id, err))
		return
	}
	client := &socketClient{send: make(chan []byte, 1)}
	if !s.join(id, loc, client) {
		writeError(w, plan.NewError(http.StatusServiceUnavailable, "UNAVAILABLE",
			"This node serves %d realtime sockets already; retry later or on another node.", s.max))
		return
	}
	defer s.leave(id, client)
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return // Accept has answered the client
	}
	defer c.CloseNow()
	ctx := c.CloseRead(r.Context()) // ends when the client closes or goes
	revoked := s.watchKey(ctx, key, id)
	first, err := s.summary(ctx, id, true)
	if err != nil {
		s.h.log.WarnContext(ctx, "realtime socket: summary failed", "site", id, "err", err)
		c.Close(websocket.StatusInternalError, "summary failed")
		return
	}
	msg := first
	for {
		wctx, cancel := context.WithTimeout(ctx, s.writeTO)
		err := c.Write(wctx, websocket.MessageText, msg)
		cancel()
		if err != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-s.done:
			c.Close(websocket.StatusGoingAway, "server stopping")
			return
		case reason := <-revoked:
			c.Close(websocket.StatusPolicyViolation, reason)
			return
		case msg = <-client.send:
		}
	}
}

// authorize resolves ?property= and the key (bearer header or ?key=) and
// checks that the property exists; it returns the property's time zone.
func (s *RealtimeSocket) authorize(r *http.Request) (uint32, string, *time.Location, error) {
	q := r.URL.Query()
	id, err := strconv.ParseUint(q.Get("property"), 10, 31)
	if err != nil || id == 0 {
		return 0, "", nil, plan.InvalidArgument("Invalid property %s: give ?property= a positive integer property id.", plan.QuoteName(q.Get("property")))
	}
	key, ok := bearerKey(r.Header.Get("Authorization"))
	if !ok {
		key = q.Get("key")
	}
	if key == "" {
		return uint32(id), "", nil, plan.NewError(http.StatusUnauthorized, "UNAUTHENTICATED",
			"Request is missing a valid API key: send 'Authorization: Bearer <key>' or the key query parameter.")
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.h.timeout)
	defer cancel()
	if err := s.h.authorizeKey(ctx, key, uint32(id)); err != nil {
		return uint32(id), "", nil, err
	}
	st, err := s.h.site(ctx, uint32(id))
	if err != nil {
		return uint32(id), "", nil, err
	}
	return uint32(id), key, st.Loc, nil
}

// join registers a client of a property in time zone loc unless the node
// is full or stopping.
func (s *RealtimeSocket) join(id uint32, loc *time.Location, c *socketClient) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.done:
		return false
	default:
	}
	if s.n >= s.max {
		return false
	}
	s.n++
	f := s.sites[id]
	if f == nil {
		f = &siteFeed{clients: map[*socketClient]struct{}{}}
		s.sites[id] = f
	}
	f.clients[c] = struct{}{}
	f.loc = loc
	return true
}

func (s *RealtimeSocket) leave(id uint32, c *socketClient) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.sites[id]
	if f == nil {
		return
	}
	if _, ok := f.clients[c]; !ok {
		return
	}
	delete(f.clients, c)
	s.n--
	if len(f.clients) == 0 {
		delete(s.sites, id)
	}
}

// Sockets is the number of WebSockets open on this node.
func (s *RealtimeSocket) Sockets() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}
