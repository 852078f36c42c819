package accesslog

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/avila-analytics/avila/agent/collect"
	"github.com/avila-analytics/avila/agent/privacy"
	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/protocol/rules"
)

// DefaultBatchEvents is how many events a batch holds unless Options say
// otherwise.
const DefaultBatchEvents = 2000

// maxLine bounds one line; longer lines are skipped as malformed.
const maxLine = 64 << 10

// keyLabel separates imported visitor keys from every other derived key.
const keyLabel = "avila import visitor key"

// Options configure a Reader.
type Options struct {
	Format Format
	// Site is the property the events belong to (from the aggregator's
	// config: its id, domains and kept query parameters).
	Site *protocol.Site
	// Host names the pages of formats that do not log the host (combined,
	// nginx); "" takes the site's first domain. Caddy lines for hosts that
	// are neither Host nor one of the site's domains are skipped.
	Host string
	// Scheme of the page URLs; "https" when empty.
	Scheme string
	// TrustedProxies are the peers whose logged X-Forwarded-For (nginx
	// format) names the client; nobody's when empty.
	TrustedProxies []netip.Prefix
	// Secret keys the visitor ids; FileSecret derives it from the file.
	Secret [privacy.SaltLen]byte
	// Enricher sets geo and user agent fields and spots bots; required.
	Enricher collect.Enricher
	// BatchEvents bounds the events of one batch; DefaultBatchEvents when 0.
	BatchEvents int
	// Now is the clock lines in the future are judged by; time.Now when nil.
	Now func() time.Time
}

// Skip reasons: why a line did not become an event. Stable names, used in
// the importer's summary.
const (
	SkipMalformed = "malformed"  // not in the format
	SkipMethod    = "method"     // not GET
	SkipStatus    = "status"     // not 200 or 304
	SkipAsset     = "asset"      // a file a page loads (script, image, font …) or not HTML
	SkipTracker   = "tracker"    // Avila's or GA4's own collection paths
	SkipOtherHost = "other_host" // a host that is not the site's
	SkipBot       = "bot"        // a crawler, headless browser or no user agent
	SkipTime      = "time"       // before 2000 or in the future
	SkipInvalid   = "invalid"    // a page URL or referrer the agent's rules refuse
)

// Stats count what a Reader read.
type Stats struct {
	Lines     int64            // lines read, including skipped ones
	PageViews int64            // events made
	Skipped   map[string]int64 // lines skipped, by Skip* reason
}

// Reader reads an access log and returns its page views in batches. Not
// safe for concurrent use; it turns lines into events on several
// goroutines, in chunks whose results it puts back in line order.
type Reader struct {
	opts    Options
	in      *bufio.Reader
	host    string
	workers []*worker
	pending [][]byte // events made but not yet returned, in line order
	eof     bool
	stats   Stats
	line    []byte
}

// chunkLines is how many lines one worker turns into events at a time.
const chunkLines = 1024

// worker turns chunks of lines into events. Each has its own visitor keys
// and parse buffer; the enricher is shared (it is safe for concurrent use).
type worker struct {
	r       *Reader
	keys    map[string]*privacy.Key // by UTC day
	rec     Record
	lines   [][]byte // the chunk, copied out of the reader's buffer
	buf     []byte   // backing store of lines
	events  [][]byte // the chunk's encoded events
	skipped map[string]int64
	err     error
}

// NewReader reads the log in r (already decompressed).
func NewReader(r io.Reader, opts Options) (*Reader, error) {
	switch {
	case opts.Site == nil:
		return nil, errors.New("accesslog: no site")
	case opts.Enricher == nil:
		return nil, errors.New("accesslog: no enricher")
	case opts.Format < Combined || opts.Format > Caddy:
		return nil, fmt.Errorf("accesslog: unknown format %d", int(opts.Format))
	case opts.BatchEvents < 0:
		return nil, errors.New("accesslog: batch events must not be negative")
	}
	if opts.BatchEvents == 0 {
		opts.BatchEvents = DefaultBatchEvents
	}
	if opts.Scheme == "" {
		opts.Scheme = "https"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	host := opts.Host
	if host == "" && len(opts.Site.Domains) > 0 {
		host = opts.Site.Domains[0]
	}
	if host == "" && opts.Format != Caddy {
		return nil, fmt.Errorf("accesslog: site %d has no domain to name its pages by: give the host name", opts.Site.ID)
	}
	rd := &Reader{
		opts: opts, in: bufio.NewReaderSize(r, 256<<10), host: host,
		stats: Stats{Skipped: map[string]int64{}},
	}
	for range max(runtime.GOMAXPROCS(0), 1) {
		rd.workers = append(rd.workers, &worker{r: rd, keys: map[string]*privacy.Key{}, skipped: map[string]int64{}})
	}
	return rd, nil
}

// Stats returns the counts so far. The map is the Reader's own: read it
// between calls to Next only.
func (r *Reader) Stats() Stats { return r.stats }

// Next returns the next batch of encoded events (protocol.EncodeEvent), at
// most Options.BatchEvents, and io.EOF once the log is read. Batches depend
// only on the file's content and the options, so the same file gives the
// same batches on every run.
func (r *Reader) Next() ([][]byte, error) {
	for len(r.pending) < r.opts.BatchEvents && !r.eof {
		if err := r.round(); err != nil {
			return nil, err
		}
	}
	if len(r.pending) == 0 {
		return nil, io.EOF
	}
	n := min(len(r.pending), r.opts.BatchEvents)
	out := r.pending[:n:n]
	r.pending = r.pending[n:]
	return out, nil
}

// round reads a chunk of lines for each worker, has them made into events
// at once, and appends the events to pending in line order.
func (r *Reader) round() error {
	busy := r.workers[:0:0]
	for _, w := range r.workers {
		w.lines, w.buf, w.events, w.err = w.lines[:0], w.buf[:0], nil, nil
		for len(w.lines) < chunkLines {
			line, err := r.readLine()
			if errors.Is(err, io.EOF) {
				r.eof = true
				break
			}
			if err != nil {
				return fmt.Errorf("accesslog: read line %d: %w", r.stats.Lines+1, err)
			}
			r.stats.Lines++
			// Copy: the next read overwrites the reader's buffer. Lines
			// are sliced out of buf once it stops growing.
			w.buf = append(w.buf, line...)
			w.lines = append(w.lines, w.buf[len(w.buf)-len(line):])
		}
		if len(w.lines) > 0 {
			// Slices taken before buf grew point into its old array, which
			// still holds their bytes: nothing wrote there since.
			busy = append(busy, w)
		}
		if r.eof {
			break
		}
	}
	var wg sync.WaitGroup
	for _, w := range busy {
		wg.Go(w.chunk)
	}
	wg.Wait()
	for _, w := range busy {
		if w.err != nil {
			return w.err
		}
		r.pending = append(r.pending, w.events...)
		r.stats.PageViews += int64(len(w.events))
		for k, v := range w.skipped {
			r.stats.Skipped[k] += v
		}
		clear(w.skipped)
	}
	return nil
}

// chunk turns w.lines into w.events.
func (w *worker) chunk() {
	for _, line := range w.lines {
		e, reason := w.event(line)
		if reason != "" {
			w.skipped[reason]++
			continue
		}
		b, err := protocol.EncodeEvent(&e)
		if err != nil {
			w.err = fmt.Errorf("accesslog: encode an event: %w", err)
			return
		}
		w.events = append(w.events, b)
	}
}

// readLine returns the next line without its ending, or an over-long line
// as empty (it is then skipped as malformed).
func (r *Reader) readLine() ([]byte, error) {
	r.line = r.line[:0]
	tooLong := false
	for {
		chunk, err := r.in.ReadSlice('\n')
		if !tooLong && len(r.line)+len(chunk) <= maxLine {
			r.line = append(r.line, chunk...)
		} else {
			tooLong = true // keep reading to its end; the line is skipped
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if len(r.line) == 0 && !tooLong {
				return nil, io.EOF
			}
		case err != nil:
			return nil, err
		}
		if tooLong {
			return []byte{0}, nil // malformed in every format
		}
		return trimEOL(r.line), nil
	}
}

func trimEOL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// minTime: earlier lines are clock garbage, as for the aggregator.
var minTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// event turns one line into a page view, or says why it is skipped.
func (w *worker) event(line []byte) (protocol.Event, string) {
	r, rec := w.r, &w.rec
	if err := r.opts.Format.Parse(line, rec); err != nil {
		return protocol.Event{}, SkipMalformed
	}
	if reason := pageSkip(rec); reason != "" {
		return protocol.Event{}, reason
	}
	host := r.host
	if rec.Host != "" {
		h := strings.ToLower(rec.Host)
		if i := strings.LastIndexByte(h, ':'); i > 0 && !strings.HasSuffix(h, "]") {
			h = h[:i] // drop the port
		}
		if h != r.host && !slices.Contains(r.opts.Site.Domains, h) {
			return protocol.Event{}, SkipOtherHost
		}
		host = h
	}
	if rec.Time.Before(minTime) || rec.Time.After(r.opts.Now().Add(time.Hour)) {
		return protocol.Event{}, SkipTime
	}
	ip := collect.ForwardedClient(rec.IP, rec.Forwarded, r.opts.TrustedProxies)
	hit := collect.Hit{
		MeasurementID: r.opts.Site.MeasurementID, Name: "page_view",
		Page: r.opts.Scheme + "://" + host + rec.URI, Referrer: rec.Referrer,
		Cookieless: true, TimeMicros: rec.Time.UnixMicro(),
	}
	e, err := collect.BuildEvent(&hit, r.opts.Site, w.key(rec.Time), ip, rec.UserAgent, rec.Time)
	if err != nil {
		return protocol.Event{}, SkipInvalid
	}
	if r.opts.Enricher.Enrich(&e, ip, rec.UserAgent) {
		return protocol.Event{}, SkipBot
	}
	// The edge's rules, as for a live hit: over-long paths and referrers
	// are cut, broken text mended; what cannot be mended is skipped.
	if _, v := rules.Repair(&e); v != nil {
		return protocol.Event{}, SkipInvalid
	}
	return e, ""
}

// key is the visitor key of t's UTC day.
func (w *worker) key(t time.Time) *privacy.Key {
	day := t.UTC().Format(time.DateOnly)
	k := w.keys[day]
	if k == nil {
		if len(w.keys) > 64 { // lines come in time order: old days are done
			clear(w.keys)
		}
		k = privacy.DerivedKey(&w.r.opts.Secret, keyLabel, w.r.opts.Site.ID, day)
		w.keys[day] = k
	}
	return k
}
