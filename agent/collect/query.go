package collect

import (
	"errors"
	"net/url"
	"strings"
)

// Errors as url.ParseQuery words them; describeQueryError reads the first.
var (
	errSemicolon     = errors.New("invalid semicolon separator in query")
	errTooManyParams = errors.New("number of URL query parameters exceeded limit")
)

// maxQueryParams is url.ParseQuery's default limit on parameters.
// presizeParams bounds the map made up front, so a query of thousands of
// parameters costs no more than with url.ParseQuery.
const (
	maxQueryParams = 10000
	presizeParams  = 64
)

// parseQuery parses a query string exactly as url.ParseQuery does (same
// values, same first error) but sized for a hit: the map is made with room
// for every parameter, so it never grows, and the values share one backing
// array instead of a slice each. A gtag.js hit carries 15–30 parameters,
// and url.ParseQuery's map growth and per-value slices were a third of the
// edge's CPU per hit. The shape counts the keys a hit is searched for
// by iterating over all of them, so a hit without any is not searched.
func parseQuery(query string) (v url.Values, shape queryShape, err error) {
	return new(queryBuf).parse(query)
}

// queryBuf holds a parsed query's map and values for the next query: the
// lines of a POST body are parsed one after the other, each read before
// the next is parsed (a Hit keeps strings, never the map or its slices),
// so they share one map instead of one each.
type queryBuf struct {
	m       url.Values
	backing []string
}

// parse is parseQuery into b's map, emptied first: the map returned is
// valid until the next call.
func (b *queryBuf) parse(query string) (v url.Values, shape queryShape, err error) {
	n := strings.Count(query, "&") + 1
	if n > maxQueryParams {
		return nil, queryShape{}, errTooManyParams
	}
	n = min(n, presizeParams)
	if b.m == nil {
		b.m, b.backing = make(url.Values, n), make([]string, 0, n)
	}
	m := b.m
	clear(m)
	backing := b.backing[:0]
	for query != "" {
		var part string
		part, query, _ = strings.Cut(query, "&")
		if strings.Contains(part, ";") {
			err = errSemicolon // unlike escape errors, the last one wins, as in url.ParseQuery
			continue
		}
		if part == "" {
			continue
		}
		key, value, _ := strings.Cut(part, "=")
		key, err1 := queryUnescape(key)
		if err1 == nil {
			value, err1 = queryUnescape(value)
		}
		if err1 != nil {
			if err == nil {
				err = err1
			}
			continue
		}
		if prev, ok := m[key]; ok {
			m[key] = append(prev, value)
			continue
		}
		// Full slice expression: a later repeat of this key appends to a
		// copy, never over the next key's value.
		backing = append(backing, value)
		i := len(backing) - 1
		m[key] = backing[i : i+1 : i+1]
		if strings.IndexByte(key, '.') >= 0 {
			shape.dotted++
		}
		if isItemKey(key) {
			shape.items++
		}
	}
	b.backing = backing[:0] // grown, when it was, for the next query
	return m, shape, err
}

// queryUnescape is url.QueryUnescape, which returns s itself when it holds
// neither '%' nor '+', after a byte-by-byte look; most keys and many values
// of a hit are so, and two vectorized searches tell it sooner.
func queryUnescape(s string) (string, error) {
	if strings.IndexByte(s, '%') < 0 && strings.IndexByte(s, '+') < 0 {
		return s, nil
	}
	return url.QueryUnescape(s)
}

// queryShape counts a query's distinct keys of the kinds read by iterating
// over every key: dotted ones (ep.*, epn.*, up.*, upn.*) and item ones
// (pr1, pr2 …).
type queryShape struct {
	dotted, items int
}

// isItemKey reports whether k may be a gtag.js item key: pr followed by
// a digit from 1 (parseGtagItems reads the index).
func isItemKey(k string) bool {
	return len(k) >= 3 && k[0] == 'p' && k[1] == 'r' && k[2] >= '1' && k[2] <= '9'
}
