package collect

import (
	"encoding/binary"
	"errors"
	"math/bits"
	"net/url"
	"slices"
	"strings"
	"unsafe"
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

// Slots of the parameters a hit reads by name (knownSlot): they are kept
// in an array, not in the map, so reading one is an index, not two map
// look-ups (a body line's, then the query string's).
const (
	pV = iota
	pTID
	pEN
	pCID
	pUID
	pDL
	pDR
	pDT
	pUL
	pSR
	pGCS
	pGCD
	pSID
	pSCT
	pET
	pS
	pSEG
	pSS
	pFV
	pNSI
	pCU
	numKnown
)

// knownSlot is the slot of a parameter a hit reads by name; -1 for any
// other (custom parameters, items, what gtag.js sends for Google's own use).
func knownSlot(k string) int {
	switch k {
	case "v":
		return pV
	case "tid":
		return pTID
	case "en":
		return pEN
	case "cid":
		return pCID
	case "uid":
		return pUID
	case "dl":
		return pDL
	case "dr":
		return pDR
	case "dt":
		return pDT
	case "ul":
		return pUL
	case "sr":
		return pSR
	case "gcs":
		return pGCS
	case "gcd":
		return pGCD
	case "sid":
		return pSID
	case "sct":
		return pSCT
	case "_et":
		return pET
	case "_s":
		return pS
	case "seg":
		return pSEG
	case "_ss":
		return pSS
	case "_fv":
		return pFV
	case "_nsi":
		return pNSI
	case "cu":
		return pCU
	}
	return -1
}

// query is a parsed query string: the first value of each known
// parameter in its slot, every other parameter in other with all its
// values, as url.ParseQuery gives them.
type query struct {
	known [numKnown]string
	sent  uint32 // bit i: known[i] was sent (perhaps empty)
	// Every other parameter once, in the order of its first value: a
	// hit's few are found by a look at each, cheaper than a map's
	// hashing, clearing and iteration; index finds them once there are
	// more than linearKeys.
	other []otherParam
	index map[string]int // key → position in other; nil up to linearKeys
	shape queryShape
	// What hits read of known values, kept so that the query string's are
	// read once for all the lines of a POST, not once per line: ints[i]
	// is known[i] as an integer when bit i of parsed is set (intParam),
	// lowerUL is ul in lower case when lowered is set.
	ints    [numKnown]int64
	parsed  uint32
	lowerUL string
	lowered bool
}

// otherParam is a parameter of a query that is not a known one, with
// every value it was sent with.
type otherParam struct {
	key  string
	vals []string
}

// linearKeys is how many other parameters a query finds by looking at
// each; one with more indexes them in a map.
const linearKeys = 16

// get returns the first value of the known parameter in slot i and
// whether it was sent.
func (q *query) get(i int) (string, bool) {
	return q.known[i], q.sent&(1<<i) != 0
}

// find returns the position in other of the parameter key, or -1.
func (q *query) find(key string) int {
	if q.index != nil {
		if i, ok := q.index[key]; ok {
			return i
		}
		return -1
	}
	for i := range q.other {
		if q.other[i].key == key {
			return i
		}
	}
	return -1
}

// queryBuf holds a parsed query for the next one: the lines of a POST
// body are parsed one after the other, each read before the next is
// parsed (a Hit keeps strings, never the map or its slices), so they share
// one map instead of one each. Unescaped values are written into arena,
// of which each is a string (see unescape).
type queryBuf struct {
	q       query
	backing []string
	arena   []byte
}

// newQueryBuf is a queryBuf whose arena holds the unescaped text of n
// bytes of queries without growing (unescaping never lengthens text).
func newQueryBuf(n int) *queryBuf {
	return &queryBuf{arena: make([]byte, 0, n)}
}

// parse parses raw into b's query, emptied first: what it returns is
// valid until the next call; the strings in it are valid for ever.
func (b *queryBuf) parse(raw string) (*query, error) {
	// More parameters than the limit take at least as many bytes.
	if len(raw) >= maxQueryParams && strings.Count(raw, "&")+1 > maxQueryParams {
		return nil, errTooManyParams
	}
	all := raw
	q := &b.q
	clear(q.other) // no value of the last query stays reachable
	q.other, q.index = q.other[:0], nil
	q.sent, q.shape, q.parsed, q.lowered = 0, queryShape{}, 0, false
	backing := b.backing[:0]
	// A query without a semicolon, as every one gtag.js sends, needs no
	// search for one in each part.
	semicolons := strings.IndexByte(raw, ';') >= 0
	var err error
	for raw != "" {
		part := raw
		if i := strings.IndexByte(raw, '&'); i >= 0 {
			part, raw = raw[:i], raw[i+1:]
		} else {
			raw = ""
		}
		if semicolons && strings.IndexByte(part, ';') >= 0 {
			err = errSemicolon // unlike escape errors, the last one wins, as in url.ParseQuery
			continue
		}
		if part == "" {
			continue
		}
		key, value := part, ""
		if i := indexByteShort(part, '='); i >= 0 {
			key, value = part[:i], part[i+1:]
		}
		// unescape, without its call for the keys and values (most)
		// that have no escape.
		var err1 error
		if i := firstEscape(key); i >= 0 {
			key, err1 = b.unescapeFrom(key, i)
		}
		if i := firstEscape(value); i >= 0 && err1 == nil {
			value, err1 = b.unescapeFrom(value, i)
		}
		if err1 != nil {
			if err == nil {
				err = err1
			}
			continue
		}
		if i := knownSlot(key); i >= 0 {
			if q.sent&(1<<i) == 0 {
				q.known[i] = value
				q.sent |= 1 << i
			}
			continue
		}
		// Sized for the first parameter that is not a known one: a page
		// view as gtag.js sends it has none.
		if cap(q.other) == 0 {
			n := min(strings.Count(all, "&")+1, presizeParams)
			q.other, backing = make([]otherParam, 0, n), make([]string, 0, n)
		}
		if j := q.find(key); j >= 0 {
			q.other[j].vals = append(q.other[j].vals, value)
			continue
		}
		// Full slice expression: a later repeat of this key appends to a
		// copy, never over the next key's value.
		backing = append(backing, value)
		i := len(backing) - 1
		q.other = append(q.other, otherParam{key: key, vals: backing[i : i+1 : i+1]})
		switch {
		case q.index != nil:
			q.index[key] = len(q.other) - 1
		case len(q.other) > linearKeys:
			q.index = make(map[string]int, 2*len(q.other))
			for j, p := range q.other {
				q.index[p.key] = j
			}
		}
		if strings.IndexByte(key, '.') >= 0 {
			q.shape.dotted++
		}
		if isItemKey(key) {
			q.shape.items++
		}
	}
	b.backing = backing[:0] // grown, when it was, for the next query
	return q, err
}

// shortText is the length below which a text is searched byte by byte:
// most keys and values of a hit are a few bytes, for which a loop costs
// less than the call of a vectorized search.
const shortText = 16

// indexByteShort is strings.IndexByte, by a loop for a short s.
func indexByteShort(s string, c byte) int {
	if len(s) >= shortText {
		return strings.IndexByte(s, c)
	}
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

// firstEscape is the index of the first '%' or '+' of s, or -1.
func firstEscape(s string) int {
	if len(s) < 8 {
		for i := 0; i < len(s); i++ {
			if c := s[i]; c == '%' || c == '+' {
				return i
			}
		}
		return -1
	}
	// Eight bytes at a time (escapeBytes), the last word overlapping the
	// one before it: quicker than a vectorized search for each of the two
	// bytes over a hit's values, which are a few words long.
	p := unsafe.Pointer(unsafe.StringData(s))
	for i := 0; ; i += 8 {
		if i > len(s)-8 {
			i = len(s) - 8
		}
		if m := escapeBytes(binary.LittleEndian.Uint64(unsafe.Slice((*byte)(unsafe.Add(p, i)), 8))); m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
		if i == len(s)-8 {
			return -1
		}
	}
}

// unescapeFrom is unescape of s, whose first '%' or '+' is at i.
func (b *queryBuf) unescapeFrom(s string, i int) (string, error) {
	start := len(b.arena)
	if cap(b.arena)-start < len(s) {
		b.arena = slices.Grow(b.arena, len(s))
	}
	// The text decoded is no longer than s: written by index into the
	// arena's room for it, without append's test of capacity per byte.
	out := b.arena[start:cap(b.arena)]
	n := copy(out, s[:i])
	// Eight bytes at a time up to the next escape: a word of s is stored
	// whole at n (n <= i, so out has room for it), and the bytes after an
	// escape in it are written over. The last bytes, fewer than eight,
	// are the end of the word that ends s, shifted down, when out has
	// room for eight bytes at n.
	src, dst := unsafe.StringData(s), unsafe.SliceData(out)
	for i < len(s) {
		var w uint64
		avail := len(s) - i
		switch {
		case avail >= 8:
			avail = 8
			w = binary.LittleEndian.Uint64(unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(src), i)), 8))
		case len(s) >= 8 && len(out)-n >= 8:
			w = binary.LittleEndian.Uint64(unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(src), len(s)-8)), 8))
			w >>= 8 * (8 - avail) // the bytes above avail are zero, never an escape
		default:
			avail = 0
		}
		if avail > 0 {
			binary.LittleEndian.PutUint64(unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(dst), n)), 8), w)
			m := escapeBytes(w)
			if m == 0 {
				i, n = i+avail, n+avail
				continue
			}
			k := bits.TrailingZeros64(m) >> 3
			i, n = i+k, n+k
		}
		c := s[i]
		switch c {
		case '+':
			c = ' '
		case '%':
			if len(s)-i < 3 {
				return "", unescapeError(s)
			}
			hi, lo := hexValue[s[i+1]], hexValue[s[i+2]]
			if hi|lo > 0xf {
				return "", unescapeError(s)
			}
			c = hi<<4 | lo
			i += 2
		}
		out[n] = c
		n++
		i++
	}
	b.arena = b.arena[:start+n]
	if n == 0 {
		return "", nil
	}
	return unsafe.String(&out[0], n), nil
}

// escapeBytes has the high bit of each byte of w (eight bytes of text,
// little-endian) that is '%' or '+' set, and perhaps of bytes after the
// first such one, never of a byte before it: its lowest set bit is the
// first escape. (x-ones)&^x has a byte's high bit set where x's byte is
// zero; the borrow of a zero byte may set it in the bytes above.
func escapeBytes(w uint64) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	p, q := w^(ones*'%'), w^(ones*'+')
	return ((p-ones)&^p | (q-ones)&^q) & highs
}

// unescapeError is the error url.QueryUnescape returns for s, which holds
// a malformed escape.
func unescapeError(s string) error {
	_, err := url.QueryUnescape(s)
	return err
}

// hexValue is the value of each hexadecimal digit, 0xff for every other
// byte.
var hexValue = func() (t [256]byte) {
	for c := range t {
		switch {
		case '0' <= c && c <= '9':
			t[c] = byte(c - '0')
		case 'a' <= c && c <= 'f':
			t[c] = byte(c - 'a' + 10)
		case 'A' <= c && c <= 'F':
			t[c] = byte(c - 'A' + 10)
		default:
			t[c] = 0xff
		}
	}
	return t
}()

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
