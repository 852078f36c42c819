package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/avila-analytics/avila/protocol"
)

// Data subject requests: a subject is found by keys, the keyed hashes
// (protocol/identity) of its client id or user_id under the site's identity
// secret, which the agent stores as events' visitor ids. Only the
// aggregator's side of protocol/identity needs the secret; this package
// only matches keys.

// ErrNoIdentitySecret: the site has no identity secret, so no stored row
// can be tied to a client id or user_id.
var ErrNoIdentitySecret = errors.New("the site has no identity secret: its visitors are counted without a stable key and cannot be identified")

// IdentitySecret returns the site's identity secret; ErrNotFound for an
// unknown site, ErrNoIdentitySecret when it has none.
func (s *Store) IdentitySecret(ctx context.Context, site uint32) ([]byte, error) {
	var secret []byte
	err := s.pool.QueryRow(ctx, "SELECT identity_secret FROM sites WHERE id = $1", int32(site)).Scan(&secret)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres: site %d: %w", site, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: site %d identity secret: %w", site, err)
	}
	if len(secret) == 0 {
		return nil, fmt.Errorf("postgres: site %d: %w", site, ErrNoIdentitySecret)
	}
	return secret, nil
}

// SetIdentitySecret sets a site's identity secret (32 bytes); for tests
// and for deployments that bring their own.
func (s *Store) SetIdentitySecret(ctx context.Context, site uint32, secret []byte) error {
	if len(secret) != 32 {
		return fmt.Errorf("postgres: site %d identity secret: %d bytes, want 32", site, len(secret))
	}
	tag, err := s.pool.Exec(ctx, "UPDATE sites SET identity_secret = $2 WHERE id = $1", int32(site), secret)
	if err != nil {
		return fmt.Errorf("postgres: site %d identity secret: %w", site, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: site %d identity secret: %w", site, ErrNotFound)
	}
	return nil
}

// subjectKeys turns keys into the bigint array visitor_id is matched with.
func subjectKeys(keys []uint64) []int64 {
	out := make([]int64, 0, len(keys))
	for _, k := range keys {
		if k != 0 && !slices.Contains(out, int64(k)) {
			out = append(out, int64(k))
		}
	}
	return out
}

// SubjectKeys is a set of data subjects' keys (visitor or user keys), as
// tombstones and subject requests name them.
type SubjectKeys map[uint64]bool

// subjectKeySet is the set of keys.
func subjectKeySet(keys []int64) SubjectKeys {
	out := make(SubjectKeys, len(keys))
	for _, k := range keys {
		out[uint64(k)] = true
	}
	return out
}

// Holds reports whether e is an event of one of the subjects: its visitor
// key is one of them, or its user key (a user_id's events on any device).
// A nil set holds none.
func (k SubjectKeys) Holds(e *protocol.Event) bool {
	return k[e.Visitor] || (e.User != 0 && k[e.User])
}

// querier is what reads a subject's rows: the pool or a transaction.
type subjectQuerier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// subjectPackDays returns the UTC days whose event_packs may hold events
// of keys: every day one of their sessions touched (found through the
// sessions key, one index probe per partition), and every packed day older
// than the oldest sessions partition, whose sessions retention removed.
func subjectPackDays(ctx context.Context, q subjectQuerier, site int32, keys []int64) ([]time.Time, error) {
	rows, err := q.Query(ctx, `
		SELECT DISTINCT d::date FROM sessions s
		CROSS JOIN LATERAL generate_series((s.ts AT TIME ZONE 'UTC')::date, (s.last_ts AT TIME ZONE 'UTC')::date, interval '1 day') d
		WHERE s.site_id = $1 AND s.visitor_id = ANY($2)
		UNION
		SELECT DISTINCT p.day FROM event_packs p
		WHERE p.site_id = $1 AND p.day < COALESCE((
			SELECT to_date(substr(min(c.relname), 11), 'YYYYMMDD') FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
			WHERE i.inhparent = 'sessions'::regclass AND c.relname LIKE 'sessions\_p%'), 'infinity'::date)
		ORDER BY 1`, site, keys)
	if err != nil {
		return nil, fmt.Errorf("days of the subject: %w", err)
	}
	days, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
	if err != nil {
		return nil, fmt.Errorf("days of the subject: %w", err)
	}
	return days, nil
}

// subjectEventsSQL selects a subject's events ($1 site, $2 keys, $3 the
// UTC days of packs to look in): rows of the events table, then packed
// ones, each in time order.
const subjectEventsSQL = `
	SELECT ts, visitor_id, session_id, name_id, referrer_id, content_id, client_id, traffic_id, engagement_ms, flags, params
	FROM events WHERE site_id = $1 AND visitor_id = ANY($2)
	UNION ALL
	SELECT u.ts, u.visitor_id, u.session_id, u.name_id, u.referrer_id, u.content_id, u.client_id, u.traffic_id, u.engagement_ms, u.flags, u.params
	FROM event_packs p CROSS JOIN LATERAL unnest(p.ts, p.visitor_id, p.session_id, p.name_id, p.referrer_id,
		p.content_id, p.client_id, p.traffic_id, p.engagement_ms, p.flags, p.params)
		AS u(ts, visitor_id, session_id, name_id, referrer_id, content_id, client_id, traffic_id, engagement_ms, flags, params)
	WHERE p.site_id = $1 AND p.day = ANY($3) AND p.visitor_id && $2 AND u.visitor_id = ANY($2)
	ORDER BY 1`

// SubjectEvent is one stored event of a subject, dictionary ids resolved.
type SubjectEvent struct {
	Time         time.Time          `json:"time"`
	Key          uint64             `json:"key"` // the visitor key it is stored under
	SessionID    int64              `json:"session_id"`
	Name         string             `json:"event_name"`
	Dims         map[string]string  `json:"dimensions,omitempty"` // page_path, country, browser …
	EngagementMs int32              `json:"engagement_time_msec"`
	Flags        int16              `json:"flags"`
	Params       map[string]string  `json:"params,omitempty"`
	NumParams    map[string]float64 `json:"num_params,omitempty"`
	UserProps    map[string]string  `json:"user_properties,omitempty"`
}

// SubjectSession is one stored session of a subject.
type SubjectSession struct {
	Start        time.Time         `json:"start"`
	Last         time.Time         `json:"last"`
	Key          uint64            `json:"key"`
	SessionID    int64             `json:"session_id"`
	Events       int32             `json:"events"`
	PageViews    int32             `json:"page_views"`
	KeyEvents    int32             `json:"key_events"`
	EngagementMs int64             `json:"engagement_time_msec"`
	Flags        int16             `json:"flags"`
	Dims         map[string]string `json:"dimensions,omitempty"` // landing_page, exit_page, source …
}

// SubjectData is everything stored of a subject on a site.
type SubjectData struct {
	Events   []SubjectEvent    `json:"events"`
	Sessions []SubjectSession  `json:"sessions"`
	Commerce []SubjectCommerce `json:"commerce"` // gdpr_commerce.go
	Items    []SubjectItem     `json:"items"`
	// Quarantined are the subject's events in staged rows no derivation
	// could take (staged_quarantine): held, in no report.
	Quarantined []SubjectEvent `json:"quarantined_events"`
}

// DimNames name the dimension kinds in exports.
var DimNames = map[DimKind]string{
	DimEventName: "event_name", DimPagePath: "page_path", DimHost: "host_name", DimTitle: "page_title", DimReferrer: "referrer",
	DimLanguage: "language", DimScreen: "screen_resolution", DimCountry: "country", DimRegion: "region", DimCity: "city",
	DimBrowser: "browser", DimOS: "operating_system", DimDevice: "device_category",
	DimSource: "source", DimMedium: "medium", DimCampaign: "campaign", DimChannelGroup: "channel_group",
}

// SubjectData reads every stored event and session of the subject keys on
// site, with their dimension values and parameters (user properties
// included).
func (s *Store) SubjectData(ctx context.Context, site uint32, keys []uint64) (SubjectData, error) {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return SubjectData{}, fmt.Errorf("postgres: subject data of site %d: begin: %w", site, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	d, err := subjectData(ctx, tx, int32(site), subjectKeys(keys))
	if err != nil {
		return SubjectData{}, fmt.Errorf("postgres: subject data of site %d: %w", site, err)
	}
	return d, nil
}

func subjectData(ctx context.Context, tx pgx.Tx, site int32, keys []int64) (SubjectData, error) {
	out := SubjectData{Events: []SubjectEvent{}, Sessions: []SubjectSession{}, Commerce: []SubjectCommerce{}, Items: []SubjectItem{},
		Quarantined: []SubjectEvent{}}
	if len(keys) == 0 {
		return out, nil
	}
	var err error
	if out.Quarantined, err = subjectQuarantined(ctx, tx, site, keys); err != nil {
		return out, err
	}
	days, err := subjectPackDays(ctx, tx, site, keys)
	if err != nil {
		return out, err
	}
	type rawEvent struct {
		ev                                       SubjectEvent
		name, referrer, content, client, traffic int32
		params                                   []byte
	}
	rows, err := tx.Query(ctx, subjectEventsSQL, site, keys, days)
	if err != nil {
		return out, fmt.Errorf("events: %w", err)
	}
	var raws []rawEvent
	for rows.Next() {
		var r rawEvent
		var visitor int64
		if err := rows.Scan(&r.ev.Time, &visitor, &r.ev.SessionID, &r.name, &r.referrer, &r.content, &r.client, &r.traffic,
			&r.ev.EngagementMs, &r.ev.Flags, &r.params); err != nil {
			rows.Close()
			return out, fmt.Errorf("events: %w", err)
		}
		r.ev.Key = uint64(visitor)
		r.ev.Time = r.ev.Time.UTC()
		raws = append(raws, r)
	}
	if err := rows.Err(); err != nil {
		return out, fmt.Errorf("events: %w", err)
	}
	type rawSession struct {
		ss                                                          SubjectSession
		landing, exit, host, referrer, client, traffic, firstSource int32
	}
	rows, err = tx.Query(ctx, `SELECT ts, last_ts, visitor_id, session_id, events, page_views, key_events, engagement_ms, flags,
		page_id, exit_page_id, host_id, referrer_id, client_id, traffic_id, first_source_id
		FROM sessions WHERE site_id = $1 AND visitor_id = ANY($2) ORDER BY ts, session_id`, site, keys)
	if err != nil {
		return out, fmt.Errorf("sessions: %w", err)
	}
	var sess []rawSession
	for rows.Next() {
		var r rawSession
		var visitor int64
		if err := rows.Scan(&r.ss.Start, &r.ss.Last, &visitor, &r.ss.SessionID, &r.ss.Events, &r.ss.PageViews, &r.ss.KeyEvents,
			&r.ss.EngagementMs, &r.ss.Flags, &r.landing, &r.exit, &r.host, &r.referrer, &r.client, &r.traffic, &r.firstSource); err != nil {
			rows.Close()
			return out, fmt.Errorf("sessions: %w", err)
		}
		r.ss.Key = uint64(visitor)
		r.ss.Start, r.ss.Last = r.ss.Start.UTC(), r.ss.Last.UTC()
		sess = append(sess, r)
	}
	if err := rows.Err(); err != nil {
		return out, fmt.Errorf("sessions: %w", err)
	}
	// Resolve profiles, then dims.
	ids := map[*Profile]map[int32]bool{ContentProfile: {}, ClientProfile: {}, TrafficProfile: {}}
	for _, r := range raws {
		ids[ContentProfile][r.content], ids[ClientProfile][r.client], ids[TrafficProfile][r.traffic] = true, true, true
	}
	for _, r := range sess {
		ids[ClientProfile][r.client], ids[TrafficProfile][r.traffic] = true, true
	}
	profiles := map[*Profile]map[int32][]int32{}
	dimIDs := map[int32]bool{}
	for p, set := range ids {
		profiles[p] = map[int32][]int32{}
		list := make([]int32, 0, len(set))
		for id := range set {
			if id != 0 {
				list = append(list, id)
			}
		}
		if len(list) == 0 {
			continue
		}
		cols := "id"
		for _, k := range p.Kinds {
			cols += ", " + DimColumns[k]
		}
		rows, err := tx.Query(ctx, "SELECT "+cols+" FROM "+p.Table+" WHERE id = ANY($1)", list)
		if err != nil {
			return out, fmt.Errorf("%s: %w", p.Table, err)
		}
		for rows.Next() {
			vals := make([]int32, len(p.Kinds)+1)
			dest := make([]any, len(vals))
			for i := range vals {
				dest[i] = &vals[i]
			}
			if err := rows.Scan(dest...); err != nil {
				rows.Close()
				return out, fmt.Errorf("%s: %w", p.Table, err)
			}
			profiles[p][vals[0]] = vals[1:]
			for _, v := range vals[1:] {
				dimIDs[v] = true
			}
		}
		if err := rows.Err(); err != nil {
			return out, fmt.Errorf("%s: %w", p.Table, err)
		}
	}
	for _, r := range raws {
		dimIDs[r.name], dimIDs[r.referrer] = true, true
	}
	for _, r := range sess {
		dimIDs[r.landing], dimIDs[r.exit], dimIDs[r.host], dimIDs[r.referrer], dimIDs[r.firstSource] = true, true, true, true, true
	}
	list := make([]int32, 0, len(dimIDs))
	for id := range dimIDs {
		if id != 0 {
			list = append(list, id)
		}
	}
	values := map[int32]string{}
	if len(list) > 0 {
		rows, err := tx.Query(ctx, "SELECT id, value FROM dims WHERE site_id = $1 AND id = ANY($2)", site, list)
		if err != nil {
			return out, fmt.Errorf("dims: %w", err)
		}
		for rows.Next() {
			var id int32
			var v string
			if err := rows.Scan(&id, &v); err != nil {
				rows.Close()
				return out, fmt.Errorf("dims: %w", err)
			}
			values[id] = v
		}
		if err := rows.Err(); err != nil {
			return out, fmt.Errorf("dims: %w", err)
		}
	}
	setDim := func(m map[string]string, name string, id int32) {
		if v, ok := values[id]; ok && id != 0 {
			m[name] = v
		}
	}
	setProfile := func(m map[string]string, p *Profile, id int32) {
		for i, dim := range profiles[p][id] {
			setDim(m, DimNames[p.Kinds[i]], dim)
		}
	}
	for _, r := range raws {
		e := r.ev
		e.Name = values[r.name]
		e.Dims = map[string]string{}
		setDim(e.Dims, DimNames[DimReferrer], r.referrer)
		setProfile(e.Dims, ContentProfile, r.content)
		setProfile(e.Dims, ClientProfile, r.client)
		setProfile(e.Dims, TrafficProfile, r.traffic)
		if len(r.params) > 0 {
			p, err := DecodeParams(r.params)
			if err != nil {
				return out, fmt.Errorf("params of an event at %s: %w", e.Time.Format(time.RFC3339Nano), err)
			}
			e.Params, e.NumParams, e.UserProps = p.Params, p.NumParams, p.UserProps
		}
		out.Events = append(out.Events, e)
	}
	for _, r := range sess {
		ss := r.ss
		ss.Dims = map[string]string{}
		setDim(ss.Dims, "landing_page", r.landing)
		setDim(ss.Dims, "exit_page", r.exit)
		setDim(ss.Dims, DimNames[DimHost], r.host)
		setDim(ss.Dims, DimNames[DimReferrer], r.referrer)
		setDim(ss.Dims, "first_user_source", r.firstSource)
		setProfile(ss.Dims, ClientProfile, r.client)
		setProfile(ss.Dims, TrafficProfile, r.traffic)
		out.Sessions = append(out.Sessions, ss)
	}
	if out.Commerce, out.Items, err = subjectCommerce(ctx, tx, site, keys); err != nil {
		return out, err
	}
	return out, nil
}
