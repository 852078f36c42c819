package rollups

import (
	"strings"
	"sync"

	"github.com/avila-analytics/avila/query/plan"
)

// Names keeps the dimension values the rollups' dim_ids name (what
// groupRollupSums' statement computes), so that a report over thousands
// of dim_ids names only those it has not met before. A dim_id's values are
// a function of rows that never change once written (dims and the traffic
// profiles: no update or delete touches them, an erasure neither) and of
// the dimension's expression, so a kept value is never stale; the key holds
// the site and the report's dimensions (pagePath and
// pagePathPlusQueryString name one dim_id differently). A nil *Names keeps
// nothing. Safe for concurrent use.
type Names struct {
	mu  sync.Mutex
	max int // dim_ids kept in all, over every site and dimension list
	n   int
	m   map[namesKey]map[int32][]string
}

// namesKey is one site's and one dimension list's values.
type namesKey struct {
	site    uint32
	traffic bool   // dim_ids are traffic profiles (RollupSessionTraffic)
	items   bool   // item dimensions' expressions
	dims    string // the dimensions' names, NUL-separated
}

// DefaultNamesSize bounds a Names' dim_ids (some 100 bytes each with
// their values): a site's pages over 30 days are a few thousand.
const DefaultNamesSize = 1 << 17

// NewNames keeps up to size dim_ids' values (0: DefaultNamesSize). When
// full it starts again empty: the bound holds, and the values still in use
// are read again once.
func NewNames(size int) *Names {
	if size <= 0 {
		size = DefaultNamesSize
	}
	return &Names{max: size, m: make(map[namesKey]map[int32][]string)}
}

// namesKeyOf is the key of p's groups' values.
func namesKeyOf(p *plan.Plan) namesKey {
	dims := make([]string, len(p.Dims))
	for i, d := range p.Dims {
		dims[i] = d.Name
	}
	return namesKey{site: uint32(p.Site.ID), traffic: usesSessionTraffic(p), items: p.Items, dims: strings.Join(dims, "\x00")}
}

// lookup puts the kept values of ids into into (by position in ids) and
// returns the ids it does not keep.
func (n *Names) lookup(k namesKey, ids []int32, into [][]string) (missing []int32) {
	if n == nil {
		return ids
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	kept := n.m[k]
	for i, id := range ids {
		if v, ok := kept[id]; ok {
			into[i] = v
		} else {
			missing = append(missing, id)
		}
	}
	return missing
}

// add keeps the values of ids (read from names).
func (n *Names) add(k namesKey, ids []int32, names map[int32][]string) {
	if n == nil || len(ids) == 0 {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.n+len(ids) > n.max {
		n.m, n.n = make(map[namesKey]map[int32][]string), 0
		if len(ids) > n.max {
			return
		}
	}
	kept := n.m[k]
	if kept == nil {
		kept = make(map[int32][]string, len(ids))
		n.m[k] = kept
	}
	for _, id := range ids {
		v, ok := names[id]
		if _, had := kept[id]; ok && !had {
			kept[id] = v
			n.n++
		}
	}
}
