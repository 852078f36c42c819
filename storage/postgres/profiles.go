package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// A profile is a combination of dims ids that events share, stored once
// (client_profiles, traffic_profiles) so an events row holds one id instead
// of several: the client dimensions repeat for every event of a visitor and
// the traffic dimensions ride on a session's first event only; a page's
// host, path and title come together. Profile id
// 0 is the profile whose ids are all 0 (absent); it has no row.

// Profile is one profile table: its name and the dims kinds of its id
// columns, in column order.
type Profile struct {
	Table  string    // client_profiles or traffic_profiles
	Column string    // the events column holding the profile id
	Kinds  []DimKind // dims kinds of the id columns
}

// ContentProfile holds what an event says of its page: host name, path and
// title, which repeat together.
var ContentProfile = &Profile{Table: "content_profiles", Column: "content_id",
	Kinds: []DimKind{DimHost, DimPagePath, DimTitle}}

// ClientProfile holds the dimensions the agent derives from the client.
var ClientProfile = &Profile{Table: "client_profiles", Column: "client_id",
	Kinds: []DimKind{DimLanguage, DimScreen, DimCountry, DimRegion, DimCity, DimBrowser, DimOS, DimDevice}}

// TrafficProfile holds a session's traffic source (aggregator/channel).
var TrafficProfile = &Profile{Table: "traffic_profiles", Column: "traffic_id",
	Kinds: []DimKind{DimSource, DimMedium, DimCampaign, DimChannelGroup}}

// Profiles are the profile tables, in events column order.
var Profiles = []*Profile{ContentProfile, ClientProfile, TrafficProfile}

// DimColumns are the column names of the dims ids of each kind, in events
// (name_id … referrer_id) or in the kind's profile table (language_id …).
var DimColumns = map[DimKind]string{
	DimEventName: "name_id", DimPagePath: "page_id", DimHost: "host_id", DimTitle: "title_id", DimReferrer: "referrer_id",
	DimLanguage: "language_id", DimScreen: "screen_id", DimCountry: "country_id", DimRegion: "region_id", DimCity: "city_id",
	DimBrowser: "browser_id", DimOS: "os_id", DimDevice: "device_id",
	DimSource: "source_id", DimMedium: "medium_id", DimCampaign: "campaign_id", DimChannelGroup: "channel_id",
}

// ProfileOf returns the profile holding kind, nil for a kind stored in
// events itself.
func ProfileOf(kind DimKind) *Profile {
	for _, p := range Profiles {
		if slices.Contains(p.Kinds, kind) {
			return p
		}
	}
	return nil
}

// profileCacheSize bounds the cached profiles of each table (two
// generations of half this size; ~60 bytes per entry).
const profileCacheSize = 1 << 17

// maxProfileKinds bounds the id columns of a profile.
const maxProfileKinds = 9

// profileKey identifies a profile row.
type profileKey struct {
	site int32
	ids  [maxProfileKinds]int32
}

func compareProfileKeys(a, b profileKey) int {
	return cmp.Or(cmp.Compare(a.site, b.site), slices.Compare(a.ids[:], b.ids[:]))
}

// profileCache maps profiles to ids, two generations like dimCache.
type profileCache = idCache[profileKey]

// profileIDs resolves the profile of each of keys (parallel to out) to its
// id, inserting the profiles not known yet. Like resolveDims, it runs in
// its own short transaction in one sorted order, so batches sharing new
// profiles never deadlock, and a profile row without its batch is harmless.
func (s *Store) profileIDs(ctx context.Context, p *Profile, cache *profileCache, keys []profileKey, out []int32) error {
	var missing []profileKey
	cache.mu.Lock()
	for i, k := range keys {
		if k.ids == ([maxProfileKinds]int32{}) {
			out[i] = 0
			continue
		}
		if i > 0 && k == keys[i-1] {
			// A visitor's events follow each other and mostly share their
			// profiles: the previous key's answer, found or missing (-1,
			// filled in below), without a look-up.
			out[i] = out[i-1]
			continue
		}
		if id, ok := cache.get(k); ok {
			out[i] = id
			continue
		}
		out[i] = -1
		missing = append(missing, k)
	}
	cache.mu.Unlock()
	if len(missing) == 0 {
		return nil
	}
	slices.SortFunc(missing, compareProfileKeys)
	missing = slices.Compact(missing)
	n := len(p.Kinds)
	arrays := make([]any, 1+n)
	sites := make([]int32, len(missing))
	cols := make([][]int32, n)
	for j := range cols {
		cols[j] = make([]int32, len(missing))
	}
	for i, k := range missing {
		sites[i] = k.site
		for j := range n {
			cols[j][i] = k.ids[j]
		}
	}
	arrays[0] = sites
	names := make([]string, n)
	casts := make([]string, n)
	for j, kind := range p.Kinds {
		arrays[1+j] = cols[j]
		names[j] = DimColumns[kind]
		casts[j] = fmt.Sprintf("$%d::integer[]", j+2)
	}
	colList := "site_id, " + strings.Join(names, ", ")
	unnest := "unnest($1::integer[], " + strings.Join(casts, ", ") + ") AS k(" + colList + ")"
	order := make([]string, n+1)
	for j := range order {
		order[j] = fmt.Sprint(j + 1)
	}
	b := &pgx.Batch{}
	// Identifiers come from the Profile definitions above, never from input.
	b.Queue("INSERT INTO "+p.Table+" ("+colList+") SELECT * FROM "+unnest+
		" ORDER BY "+strings.Join(order, ", ")+" ON CONFLICT DO NOTHING", arrays...)
	b.Queue("SELECT p.id, p."+strings.Join(append([]string{"site_id"}, names...), ", p.")+
		" FROM "+p.Table+" p JOIN "+unnest+" USING ("+colList+")", arrays...)
	res := s.pool.SendBatch(ctx, b)
	defer res.Close()
	if _, err := res.Exec(); err != nil {
		return fmt.Errorf("postgres: insert %s: %w", p.Table, err)
	}
	rows, err := res.Query()
	if err != nil {
		return fmt.Errorf("postgres: select %s: %w", p.Table, err)
	}
	found := make(map[profileKey]int32, len(missing))
	dest := make([]any, 2+n)
	var id int32
	var k profileKey
	dest[0], dest[1] = &id, &k.site
	for j := range n {
		dest[2+j] = &k.ids[j]
	}
	for rows.Next() {
		k = profileKey{}
		if err := rows.Scan(dest...); err != nil {
			rows.Close()
			return fmt.Errorf("postgres: select %s: %w", p.Table, err)
		}
		found[k] = id
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("postgres: select %s: %w", p.Table, err)
	}
	if len(found) != len(missing) {
		return fmt.Errorf("postgres: BUG: resolved %d of %d %s", len(found), len(missing), p.Table)
	}
	// Cached only once committed, as in resolveDims.
	if err := res.Close(); err != nil {
		return fmt.Errorf("postgres: insert %s: commit: %w", p.Table, err)
	}
	cache.mu.Lock()
	for k, id := range found {
		cache.putLocked(k, id)
	}
	cache.mu.Unlock()
	for i, k := range keys {
		if out[i] == -1 {
			out[i] = found[k]
		}
	}
	return nil
}
