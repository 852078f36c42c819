package bench

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
)

// datasetDays is the span of the generated query data, ending now; the
// dashboard reads its last 30 days.
const datasetDays = 90

// Dictionary kinds, as the dims table numbers them.
const (
	kindName = iota + 1
	kindPage
	kindHost
	kindTitle
	kindReferrer
	kindLanguage
	kindScreen
	kindCountry
	kindRegion
	kindCity
	kindBrowser
	kindOS
	kindDevice
	numKinds = kindDevice
)

// eventMix is the share of each event name, in percent.
var eventMix = []struct {
	name  string
	share int
	flags uint8
}{
	{"page_view", 49, 0}, {"user_engagement", 15, 0}, {"scroll", 10, 0}, {"click", 6, 0},
	{"session_start", 4, protocol.FlagSessionStart}, {"first_visit", 2, protocol.FlagFirstVisit},
	{"form_submit", 2, protocol.FlagKeyEvent}, {"purchase", 2, protocol.FlagKeyEvent},
	// Ecommerce: 12% of the events drawn here, purchase included, each
	// with one item (item_rows) but begin_checkout, purchases with an
	// event_commerce row. A visitor-day's first event is a page view
	// whatever was drawn (about 17% of the rows), so ecommerce events are
	// 10% of all rows, 9% with an item.
	{"view_item", 5, 0}, {"add_to_cart", 4, 0}, {"begin_checkout", 1, 0},
}

// Ecommerce of the data set: products sold, items of which events.
const (
	datasetProducts = 200
	evPurchase      = 7 // eventMix index of purchase
)

// hasItem reports whether events of eventMix index ev carry an item.
func hasItem(ev int) bool { return ev == evPurchase || ev == 8 || ev == 9 }

// datasetCols are the columns the generator writes: eventCols and the
// event_commerce id of purchases.
var datasetCols = append(append([]string{}, eventCols...), "commerce_id")

// commerceRow and itemRow are what the generator writes beside events.
type commerceRow struct {
	id      int32
	ts      time.Time
	visitor int64
	revenue float64
	name    int32
}

type itemRow struct {
	ts                        time.Time
	visitor, session          int64
	revenue                   float64
	site, name, content       int32
	client, traffic, commerce int32
	profile, quantity         int32
	flags                     int16
}

// createProducts inserts the item profiles of the data set's products
// and returns their ids.
func createProducts(ctx context.Context, store *postgres.Store, site uint32) ([]int32, error) {
	keys := make([]postgres.ItemKey, datasetProducts)
	for i := range keys {
		keys[i] = postgres.ItemKey{fmt.Sprintf("SKU-%04d", i), fmt.Sprintf("Product %d", i), fmt.Sprintf("Brand %d", i%12),
			fmt.Sprintf("Category %d", i%8), "", "", "", "", ""}
	}
	ids, err := store.ResolveItems(ctx, site, keys)
	if err != nil {
		return nil, fmt.Errorf("bench: create products: %w", err)
	}
	return ids, nil
}

// dictSizes is how many distinct values each kind has in the data set.
var dictSizes = [numKinds + 1]int{kindName: len(eventMix), kindPage: 2000, kindHost: 2, kindTitle: 2000, kindReferrer: 300,
	kindLanguage: 12, kindScreen: 10, kindCountry: 40, kindRegion: 120, kindCity: 300, kindBrowser: 6, kindOS: 6, kindDevice: 3}

// dictValue is the i-th value of a kind.
func dictValue(kind, i int) string {
	switch kind {
	case kindName:
		return eventMix[i].name
	case kindPage:
		return fmt.Sprintf("/section-%d/article-%d", i%25, i)
	case kindHost:
		return []string{benchHost, "shop.bench.example"}[i]
	case kindTitle:
		return fmt.Sprintf("Article %d | Bench Example", i)
	case kindReferrer:
		return fmt.Sprintf("https://referrer-%d.example/", i)
	case kindLanguage:
		return []string{"en-us", "en-gb", "de-de", "fr-fr", "es-es", "it-it", "nl-nl", "pt-br", "pl-pl", "sv-se", "ja-jp", "zh-cn"}[i]
	case kindScreen:
		return []string{"1920x1080", "1440x900", "1536x864", "2560x1440", "1366x768", "390x844", "414x896", "360x800", "768x1024", "1280x720"}[i]
	case kindCountry:
		return fmt.Sprintf("C%02d", i)
	case kindRegion:
		return fmt.Sprintf("Region %d", i)
	case kindCity:
		return fmt.Sprintf("City %d", i)
	case kindBrowser:
		return []string{"Chrome", "Safari", "Firefox", "Edge", "Samsung Internet", "Opera"}[i]
	case kindOS:
		return []string{"Windows", "Macintosh", "iOS", "Android", "Linux", "Chrome OS"}[i]
	case kindDevice:
		return []string{"desktop", "mobile", "tablet"}[i]
	}
	panic(fmt.Sprintf("BUG: dictionary kind %d", kind))
}

// dictionary holds the dims ids of a data set's values: ids[kind][i].
type dictionary [numKinds + 1][]int32

// createDictionary inserts the data set's dims rows for site.
func createDictionary(ctx context.Context, store *postgres.Store, site uint32) (*dictionary, error) {
	var d dictionary
	for kind := 1; kind <= numKinds; kind++ {
		values := make([]string, dictSizes[kind])
		for i := range values {
			values[i] = dictValue(kind, i)
		}
		rows, err := store.Pool.Query(ctx, `INSERT INTO dims (site_id, kind, value)
			SELECT $1, $2, v FROM unnest($3::text[]) WITH ORDINALITY AS t(v, n) ORDER BY n RETURNING id`,
			int32(site), int16(kind), values)
		if err != nil {
			return nil, fmt.Errorf("bench: create dictionary: %w", err)
		}
		if d[kind], err = pgx.CollectRows(rows, pgx.RowTo[int32]); err != nil {
			return nil, fmt.Errorf("bench: create dictionary kind %d: %w", kind, err)
		}
		if len(d[kind]) != len(values) {
			return nil, fmt.Errorf("bench: create dictionary kind %d: %d ids for %d values", kind, len(d[kind]), len(values))
		}
	}
	return &d, nil
}

// maxVisitorSlots bounds the visitor numbers of a day (visitorSlots of a
// COPY chunk of loadDataset).
var maxVisitorSlots = visitorSlots(1_000_000)

// visitorSlots is the number of distinct visitor numbers per day in a run
// of n events: about four events per visitor and day.
func visitorSlots(n int64) uint64 { return max(uint64(n)/datasetDays/4, 100) }

// clientDims are the dictionary indexes (language, screen, country, region,
// city, browser, OS, device) of visitor number k: fixed per visitor, as a
// real visitor keeps its browser and place; cities are Zipf-popular.
func clientDims(k int, city int) [8]int {
	return [8]int{k % dictSizes[kindLanguage], (k / 7) % dictSizes[kindScreen], city % dictSizes[kindCountry],
		city % dictSizes[kindRegion], city, (k / 3) % dictSizes[kindBrowser], (k / 5) % dictSizes[kindOS], (k / 11) % dictSizes[kindDevice]}
}

// hostOf is the host index of page i: one page in ten is on the shop host.
func hostOf(page int) int {
	if page%10 == 9 {
		return 1
	}
	return 0
}

// createContents inserts the content profiles (host, path, title) of the
// data set's pages and returns their ids by page index.
func createContents(ctx context.Context, store *postgres.Store, site uint32, d *dictionary) ([]int32, error) {
	n := dictSizes[kindPage]
	hosts, pages, titles := make([]int32, n), make([]int32, n), make([]int32, n)
	for i := range n {
		hosts[i], pages[i], titles[i] = d[kindHost][hostOf(i)], d[kindPage][i], d[kindTitle][i]
	}
	rows, err := store.Pool.Query(ctx, `INSERT INTO content_profiles (site_id, host_id, page_id, title_id)
		SELECT $1, h, p, t FROM unnest($2::int[], $3::int[], $4::int[]) WITH ORDINALITY AS u(h, p, t, n) ORDER BY n RETURNING id`,
		int32(site), hosts, pages, titles)
	if err != nil {
		return nil, fmt.Errorf("bench: create content profiles: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, fmt.Errorf("bench: create content profiles: %w", err)
	}
	if len(ids) != n {
		return nil, fmt.Errorf("bench: %d content profiles for %d pages", len(ids), n)
	}
	return ids, nil
}

// trafficSources are the data set's session traffic sources (source,
// medium, campaign, default channel group, as aggregator/channel names
// them), most common first: a visitor-day's first event carries one.
var trafficSources = [][4]string{
	{"(direct)", "(none)", "(direct)", "Direct"},
	{"google", "organic", "(organic)", "Organic Search"},
	{"bing", "organic", "(organic)", "Organic Search"},
	{"news.ycombinator.com", "referral", "(referral)", "Referral"},
	{"duckduckgo", "organic", "(organic)", "Organic Search"},
	{"t.co", "referral", "(referral)", "Organic Social"},
	{"github.com", "referral", "(referral)", "Referral"},
	{"newsletter", "email", "weekly", "Email"},
	{"google", "cpc", "brand", "Paid Search"},
	{"reddit.com", "referral", "(referral)", "Organic Social"},
}

// createTraffic inserts the dims and traffic profiles of trafficSources
// and returns the profile ids in that order.
func createTraffic(ctx context.Context, store *postgres.Store, site uint32) ([]int32, error) {
	kinds := []postgres.DimKind{postgres.DimSource, postgres.DimMedium, postgres.DimCampaign, postgres.DimChannelGroup}
	cols := make([][]string, len(kinds))
	kindOf := make([]int16, 0, len(kinds)*len(trafficSources))
	var values []string
	for _, t := range trafficSources {
		for j, k := range kinds {
			cols[j] = append(cols[j], t[j])
			kindOf, values = append(kindOf, int16(k)), append(values, t[j])
		}
	}
	if _, err := store.Pool.Exec(ctx, `INSERT INTO dims (site_id, kind, value)
		SELECT DISTINCT $1::int, k, v FROM unnest($2::smallint[], $3::text[]) AS u(k, v) ON CONFLICT DO NOTHING`,
		int32(site), kindOf, values); err != nil {
		return nil, fmt.Errorf("bench: create traffic dims: %w", err)
	}
	rows, err := store.Pool.Query(ctx, `WITH t AS (SELECT * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[])
			WITH ORDINALITY AS u(source, medium, campaign, channel, n)),
		ids AS (SELECT t.n, s.id AS source_id, m.id AS medium_id, c.id AS campaign_id, g.id AS channel_id FROM t
			JOIN dims s ON s.site_id = $1 AND s.kind = $6 AND s.value = t.source
			JOIN dims m ON m.site_id = $1 AND m.kind = $7 AND m.value = t.medium
			JOIN dims c ON c.site_id = $1 AND c.kind = $8 AND c.value = t.campaign
			JOIN dims g ON g.site_id = $1 AND g.kind = $9 AND g.value = t.channel),
		ins AS (INSERT INTO traffic_profiles (site_id, source_id, medium_id, campaign_id, channel_id)
			SELECT $1, source_id, medium_id, campaign_id, channel_id FROM ids ORDER BY n
			ON CONFLICT DO NOTHING RETURNING id, source_id, medium_id, campaign_id, channel_id)
		SELECT p.id FROM ids JOIN (SELECT * FROM ins UNION ALL
			SELECT id, source_id, medium_id, campaign_id, channel_id FROM traffic_profiles WHERE site_id = $1) p
			USING (source_id, medium_id, campaign_id, channel_id) ORDER BY ids.n`,
		int32(site), cols[0], cols[1], cols[2], cols[3], int16(kinds[0]), int16(kinds[1]), int16(kinds[2]), int16(kinds[3]))
	if err != nil {
		return nil, fmt.Errorf("bench: create traffic profiles: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, fmt.Errorf("bench: create traffic profiles: %w", err)
	}
	if len(ids) != len(trafficSources) {
		return nil, fmt.Errorf("bench: %d traffic profiles for %d sources", len(ids), len(trafficSources))
	}
	return ids, nil
}

// createClients inserts the client profiles of visitor numbers 0 to
// maxVisitorSlots-1 and returns their ids by visitor number.
func createClients(ctx context.Context, store *postgres.Store, site uint32, d *dictionary) ([]int32, error) {
	rng := rand.New(rand.NewPCG(7, 11))
	cities := rand.NewZipf(rng, 1.1, 1, uint64(dictSizes[kindCity]-1))
	kinds := [8]int{kindLanguage, kindScreen, kindCountry, kindRegion, kindCity, kindBrowser, kindOS, kindDevice}
	cols := make([][]int32, 8)
	for k := range int(maxVisitorSlots) {
		for j, i := range clientDims(k, int(cities.Uint64())) {
			cols[j] = append(cols[j], d[kinds[j]][i])
		}
	}
	const unnest = `unnest($2::int[], $3::int[], $4::int[], $5::int[], $6::int[], $7::int[], $8::int[], $9::int[])
		WITH ORDINALITY AS u(language_id, screen_id, country_id, region_id, city_id, browser_id, os_id, device_id, n)`
	args := []any{int32(site)}
	for _, c := range cols {
		args = append(args, c)
	}
	if _, err := store.Pool.Exec(ctx, `INSERT INTO client_profiles (site_id, language_id, screen_id, country_id, region_id, city_id, browser_id, os_id, device_id)
		SELECT DISTINCT $1::int, language_id, screen_id, country_id, region_id, city_id, browser_id, os_id, device_id FROM `+unnest+`
		ON CONFLICT DO NOTHING`, args...); err != nil {
		return nil, fmt.Errorf("bench: create client profiles: %w", err)
	}
	rows, err := store.Pool.Query(ctx, `SELECT p.id FROM `+unnest+` JOIN client_profiles p
		USING (language_id, screen_id, country_id, region_id, city_id, browser_id, os_id, device_id)
		WHERE p.site_id = $1 ORDER BY u.n`, args...)
	if err != nil {
		return nil, fmt.Errorf("bench: read client profiles: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, fmt.Errorf("bench: read client profiles: %w", err)
	}
	if len(ids) != int(maxVisitorSlots) {
		return nil, fmt.Errorf("bench: %d client profiles for %d visitor numbers", len(ids), maxVisitorSlots)
	}
	return ids, nil
}

// eventGen generates n events of one site spread evenly over [from, to),
// in time order as they would arrive, with skewed (Zipf) popularity of
// pages, referrers and places. It is a pgx.CopyFromSource.
type eventGen struct {
	site     int32
	from     time.Time
	step     float64 // microseconds between events
	n, i     int64
	rng      *rand.Rand
	pages    *rand.Zipf
	refs     *rand.Zipf
	visitors *rand.Zipf
	dict     *dictionary
	clients  []int32 // client profile ids by visitor number
	contents []int32 // content profile ids by page index
	traffic  []int32 // traffic profile ids, as trafficSources
	sources  *rand.Zipf
	day      int64               // UTC day of the last event
	seen     map[uint64]struct{} // visitor numbers seen on that day
	params   [][]byte            // encoded custom parameters some events carry
	vals     []any
	// Ecommerce: product profile ids, the next event_commerce id and the
	// rows to write after the events (writeCommerce).
	products     []int32
	productZipf  *rand.Zipf
	nextCommerce int32
	commerce     []commerceRow
	items        []itemRow
}

// newEventGen makes a generator; seed makes runs reproducible. contents
// holds the content profile ids of the dictionary's pages, clients at least
// visitorSlots(n) client profile ids.
func newEventGen(site uint32, dict *dictionary, contents, clients, traffic []int32, from, to time.Time, n int64, seed uint64) *eventGen {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	perDay := visitorSlots(n)
	if perDay > uint64(len(clients)) {
		panic(fmt.Sprintf("BUG: %d client profiles for %d visitor numbers", len(clients), perDay))
	}
	g := &eventGen{
		site: int32(site), from: from, n: n, i: -1, rng: rng, dict: dict, contents: contents, clients: clients,
		traffic: traffic, sources: rand.NewZipf(rng, 1.3, 1, uint64(len(traffic)-1)), day: -1, seen: map[uint64]struct{}{},
		step:     float64(to.Sub(from).Microseconds()) / float64(n),
		pages:    rand.NewZipf(rng, 1.1, 2, uint64(dictSizes[kindPage]-1)),
		refs:     rand.NewZipf(rng, 1.2, 1, uint64(dictSizes[kindReferrer]-1)),
		visitors: rand.NewZipf(rng, 1.05, 1, perDay-1),
		vals:     make([]any, len(datasetCols)),
	}
	for _, p := range []postgres.EventParams{
		{Params: map[string]string{"method": "email"}},
		{Params: map[string]string{"link_domain": "docs.bench.example", "outbound": "true"}},
		{NumParams: map[string]float64{"value": 49.9}, Params: map[string]string{"currency": "EUR"}},
	} {
		b, err := msgpack.Marshal(&p)
		if err != nil {
			panic(fmt.Sprintf("BUG: encode fixed params: %v", err))
		}
		g.params = append(g.params, b)
	}
	return g
}

// Next implements pgx.CopyFromSource.
func (g *eventGen) Next() bool { g.i++; return g.i < g.n }

// Err implements pgx.CopyFromSource.
func (g *eventGen) Err() error { return nil }

// Values implements pgx.CopyFromSource; the slice is reused per row.
func (g *eventGen) Values() ([]any, error) {
	r, d, v := g.rng, g.dict, g.vals
	ts := g.from.Add(time.Duration(float64(g.i)*g.step) * time.Microsecond)
	day := ts.Unix() / 86400
	k := g.visitors.Uint64()
	visitor := int64(mix64(uint64(day)<<32 | k))
	pick := r.IntN(100)
	ev := 0
	for acc := eventMix[0].share; pick >= acc; acc += eventMix[ev].share {
		ev++
	}
	flags, traffic := int16(eventMix[ev].flags), int32(0)
	if day != g.day {
		g.day = day
		clear(g.seen)
	}
	if _, ok := g.seen[k]; !ok {
		// A visitor's first event of the day starts its session (the
		// session id is the visitor-day) with a page view that carries
		// the session's traffic source, as the write stage stores it.
		g.seen[k] = struct{}{}
		ev, flags = 0, int16(protocol.FlagSessionStart)
		traffic = g.traffic[g.sources.Uint64()]
	} else {
		flags &^= int16(protocol.FlagSessionStart) // the session started before
	}
	var engage int32
	if eventMix[ev].name == "user_engagement" {
		engage = int32(1000 + r.IntN(60_000))
	}
	params := noParams
	if r.IntN(100) < 5 {
		params = g.params[r.IntN(len(g.params))]
	}
	page := int(g.pages.Uint64())
	ref := int32(0) // most events carry no external referrer
	if r.IntN(100) < 25 {
		ref = d[kindReferrer][g.refs.Uint64()]
	}
	v[0], v[1], v[2], v[3], v[4], v[5] = ts, visitor, day*100_000+int64(k), g.site, d[kindName][ev], ref
	v[6], v[7], v[8], v[9], v[10], v[11] = g.contents[page], g.clients[k], traffic, engage, flags, params
	v[12] = int32(0)
	if hasItem(ev) && len(g.products) > 0 {
		p := int(g.productZipf.Uint64())
		qty := int32(1 + r.IntN(3))
		price := float64(5 + p%50)
		var com int32
		if ev == evPurchase {
			com = g.nextCommerce
			g.nextCommerce++
			g.commerce = append(g.commerce, commerceRow{id: com, ts: ts, visitor: visitor, revenue: price * float64(qty), name: d[kindName][ev]})
			v[12] = com
		}
		g.items = append(g.items, itemRow{ts: ts, visitor: visitor, session: day*100_000 + int64(k), revenue: price * float64(qty),
			site: g.site, name: d[kindName][ev], content: g.contents[page], client: g.clients[k], traffic: traffic, commerce: com,
			profile: g.products[p], quantity: qty, flags: flags})
	}
	return v, nil
}

// withProducts makes g write item rows of products and event_commerce
// rows numbered from firstCommerce on.
func (g *eventGen) withProducts(products []int32, firstCommerce int32) *eventGen {
	g.products, g.nextCommerce = products, firstCommerce
	g.productZipf = rand.NewZipf(g.rng, 1.2, 1, uint64(len(products)-1))
	return g
}

// writeCommerce copies the event_commerce and event_items rows of the
// events generated so far.
func (g *eventGen) writeCommerce(ctx context.Context, conn *pgx.Conn) error {
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"event_commerce"},
		[]string{"id", "site_id", "ts", "visitor_id", "revenue", "tax", "shipping", "name_id", "transaction_id", "currency_id", "flags"},
		pgx.CopyFromSlice(len(g.commerce), func(i int) ([]any, error) {
			c := &g.commerce[i]
			return []any{c.id, g.site, c.ts, c.visitor, c.revenue, 0.0, 0.0, c.name, int32(0), int32(0), int16(0)}, nil
		})); err != nil {
		return fmt.Errorf("bench: copy event_commerce: %w", err)
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"event_items"},
		[]string{"ts", "visitor_id", "session_id", "revenue", "site_id", "name_id", "referrer_id", "content_id", "client_id",
			"traffic_id", "commerce_id", "item_profile_id", "list_id", "promotion_id", "quantity", "flags"},
		pgx.CopyFromSlice(len(g.items), func(i int) ([]any, error) {
			it := &g.items[i]
			return []any{it.ts, it.visitor, it.session, it.revenue, it.site, it.name, int32(0), it.content, it.client,
				it.traffic, it.commerce, it.profile, int32(0), int32(0), it.quantity, it.flags}, nil
		})); err != nil {
		return fmt.Errorf("bench: copy event_items: %w", err)
	}
	return nil
}

// noParams is the params column of an event without parameters.
var noParams = []byte{}

// mix64 is SplitMix64's finalizer: a daily visitor number becomes an id
// spread like the agent's keyed hashes.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x & math.MaxInt64
}
