package protocol

import (
	"encoding/binary"
	"errors"
	"math"
	"slices"
)

// errSlowPath makes decodeBatchFast give up: the input uses a form of
// MessagePack its plain reader does not take (nil values, binary strings,
// unknown or repeated keys, floats for integers …), valid or not, and
// msgpack.Unmarshal decides.
var errSlowPath = errors.New("protocol: not on the fast path")

// maxInterned bounds the distinct strings an EventDecoder shares (one
// derivation's, or those a pooled decoder keeps from batch to batch).
const maxInterned = 8192

// maxReusedPlain bounds the decompressed batch an EventDecoder keeps as
// its buffer for the next.
const maxReusedPlain = 4 << 20

// batchReader reads the MessagePack of a batch without reflection. It takes
// the forms AppendBatchHead and AppendEvent write and every other integer
// and string width, and produces what msgpack.Unmarshal does for them
// (integers converted to the field's type as msgpack's decoder converts
// them); anything else is errSlowPath. Repeated string values (host,
// language, browser …) share one string per EventDecoder (DecodeBatch's
// are pooled, so batch after batch).
type batchReader struct {
	b      []byte
	i      int
	intern map[string]string
	// last holds the previous event's string value of each event field,
	// by the field's bit in event's seen set.
	last [32]string
	// names holds the event names read last: a visitor's events cycle
	// through a few (page_view, scroll, user_engagement, click …).
	names recent
	// place is where the event read last wrote its place fields.
	place placeMemo
	// params holds the keys and values of the string and numeric
	// parameters and user properties read last: events of one name carry
	// the same few keys, in any order (maps are written unordered), and
	// often the same values.
	params [recentCaches]recent
	// strMaps and numMaps, when not nil, hold the parameter maps decoded
	// before, for events whose maps are written alike to share
	// (sharedMaps).
	strMaps map[string]map[string]string
	numMaps map[string]map[string]float64
}

// Caches of recent strings of batchReader.params; strMap takes a map's
// values from the cache after its keys'.
const (
	recentParamKeys = iota
	recentParamValues
	recentPropKeys
	recentPropValues
	recentNumKeys
	recentCaches
)

// recent holds the last strings a field took, to be taken again without
// an intern look-up.
type recent struct {
	s    [4]string
	next uint8 // the entry the next miss replaces
}

// find returns the entry equal to p.
func (c *recent) find(p []byte) (string, bool) {
	for _, s := range &c.s {
		if s == string(p) { // compared: no allocation
			return s, true
		}
	}
	return "", false
}

// add makes s the newest entry, in place of the oldest.
func (c *recent) add(s string) {
	c.s[c.next%uint8(len(c.s))] = s
	c.next++
}

// decodeBatchFast decodes plain (a batch's decompressed MessagePack) into b.
// Its strings are interned in intern.
func decodeBatchFast(plain []byte, b *Batch, intern map[string]string, maps *sharedMaps) error {
	r := &batchReader{b: plain, intern: intern}
	if maps != nil {
		r.strMaps, r.numMaps = maps.str, maps.num
	}
	n, err := r.mapLen()
	if err != nil {
		return err
	}
	var seen uint8
	for range n {
		key, err := r.key()
		if err != nil {
			return err
		}
		var bit uint8
		switch key {
		case kVER:
			bit = 1
			var v int64
			v, err = r.int()
			b.Version = uint8(v)
		case kA:
			bit = 2
			b.AgentID, err = r.str()
		case kQ:
			bit = 4
			var v int64
			v, err = r.int()
			b.Seq = uint64(v)
		case kC:
			bit = 8
			b.Created, err = r.int()
		case kE:
			bit = 16
			err = r.events(b)
		default:
			return errSlowPath
		}
		if err != nil {
			return err
		}
		if seen&bit != 0 {
			return errSlowPath
		}
		seen |= bit
	}
	if r.i != len(r.b) {
		return errSlowPath
	}
	return nil
}

// Map keys as key reads them: the length in the top byte, then the bytes.
const (
	kVER = 3<<24 | 'v'<<16 | 'e'<<8 | 'r'
	kA   = 1<<24 | 'a'<<16
	kB   = 1<<24 | 'b'<<16
	kC   = 1<<24 | 'c'<<16
	kD   = 1<<24 | 'd'<<16
	kE   = 1<<24 | 'e'<<16
	kF   = 1<<24 | 'f'<<16
	kH   = 1<<24 | 'h'<<16
	kL   = 1<<24 | 'l'<<16
	kN   = 1<<24 | 'n'<<16
	kO   = 1<<24 | 'o'<<16
	kP   = 1<<24 | 'p'<<16
	kQ   = 1<<24 | 'q'<<16
	kR   = 1<<24 | 'r'<<16
	kS   = 1<<24 | 's'<<16
	kT   = 1<<24 | 't'<<16
	kU   = 1<<24 | 'u'<<16
	kV   = 1<<24 | 'v'<<16
	kBV  = 2<<24 | 'b'<<16 | 'v'<<8
	kCI  = 2<<24 | 'c'<<16 | 'i'<<8
	kCL  = 2<<24 | 'c'<<16 | 'l'<<8
	kCU  = 2<<24 | 'c'<<16 | 'u'<<8
	kPN  = 2<<24 | 'p'<<16 | 'n'<<8
	kPS  = 2<<24 | 'p'<<16 | 's'<<8
	kRG  = 2<<24 | 'r'<<16 | 'g'<<8
	kSC  = 2<<24 | 's'<<16 | 'c'<<8
	kSH  = 2<<24 | 's'<<16 | 'h'<<8
	kSI  = 2<<24 | 's'<<16 | 'i'<<8
	kSR  = 2<<24 | 's'<<16 | 'r'<<8
	kTI  = 2<<24 | 't'<<16 | 'i'<<8
	kTT  = 2<<24 | 't'<<16 | 't'<<8
	kTX  = 2<<24 | 't'<<16 | 'x'<<8
	kUP  = 2<<24 | 'u'<<16 | 'p'<<8
	kVA  = 2<<24 | 'v'<<16 | 'a'<<8
)

func (r *batchReader) events(b *Batch) error {
	n, err := r.arrayLen()
	if err != nil {
		return err
	}
	if n > MaxBatchEvents {
		return errSlowPath // check refuses it, after msgpack decodes it
	}
	// Appended to what b.Events holds (EventDecoder.Append), zeroed: the
	// capacity beyond its length may hold earlier events (slices.Grow
	// keeps them too). A slice made here is zeroed already.
	made := b.Events == nil
	if made {
		b.Events = make([]Event, 0, n) // not nil when empty, as msgpack's
	}
	base := len(b.Events)
	b.Events = slices.Grow(b.Events, n)[:base+n]
	evs := b.Events[base:]
	if !made {
		clear(evs)
	}
	for i := range evs {
		if err := r.event(&evs[i]); err != nil {
			return err
		}
	}
	return nil
}

func (r *batchReader) event(e *Event) error {
	var n int
	// A map16 (an event of 16 fields or more, as most are) or a fixmap
	// read here, without mapLen's call.
	if p := r.b[r.i:]; len(p) > 2 && p[0] == 0xde {
		n, r.i = int(binary.BigEndian.Uint16(p[1:3])), r.i+3
	} else if len(p) > 0 && p[0]&0xf0 == 0x80 {
		n, r.i = int(p[0]&0x0f), r.i+1
	} else {
		var err error
		if n, err = r.mapLen(); err != nil {
			return err
		}
	}
	k, seen, err := r.inOrder(e, n)
	if err != nil || k == n {
		return err
	}
	// Its place fields may come after the ones read in order.
	r.place.from = nil
	return r.anyOrder(e, n-k, seen)
}

// Bits of an event's fields in the set of the fields read (seen).
const (
	bitS uint32 = 1 << iota
	bitT
	bitN
	bitV
	bitU
	bitSI
	bitSC
	bitF
	bitE
	bitH
	bitP
	bitTT
	bitR
	bitL
	bitSR
	bitC
	bitRG
	bitCI
	bitB
	bitBV
	bitO
	bitD
	bitPS
	bitPN
	bitUP
	bitCL
	bitCU
	bitTI
	bitVA
	bitTX
	bitSH
)

// anyOrder reads n entries of an event's map, in any order, the fields
// in seen read already.
func (r *batchReader) anyOrder(e *Event, n int, seen uint32) error {
	var err error
	for range n {
		var key uint32
		// A fixstr of one or two bytes (every key AppendEvent writes),
		// read here: key is a call, and an event has some 25 keys. A
		// one-byte key's third byte is its value's, left out (× 0).
		if p := r.b[r.i:]; len(p) > 2 && (p[0] == 0xa1 || p[0] == 0xa2) {
			size := uint32(p[0] & 3)
			key = size<<24 | uint32(p[1])<<16 | uint32(p[2])<<8*(size-1)
			r.i += 1 + int(size)
		} else if key, err = r.keyLong(); err != nil {
			return err
		}
		var v int64
		var s *string
		var bit uint32
		switch key {
		case kS:
			bit = bitS
			v, err = r.int()
			e.Site = uint32(v)
		case kT:
			bit = bitT
			e.TimeMicros, err = r.int()
		case kN:
			bit = bitN
			e.Name, err = r.name()
		case kV:
			bit = bitV
			v, err = r.int()
			e.Visitor = uint64(v)
		case kU:
			bit = bitU
			v, err = r.int()
			e.User = uint64(v)
		case kSI:
			bit = bitSI
			e.SessionID, err = r.int()
		case kSC:
			bit = bitSC
			v, err = r.int()
			e.SessionNum = int32(v)
		case kF:
			bit = bitF
			v, err = r.int()
			e.Flags = uint8(v)
		case kE:
			bit = bitE
			e.EngageMs, err = r.int()
		case kH:
			bit, s = bitH, &e.Host
		case kP:
			bit, s = bitP, &e.Path
		case kTT:
			bit, s = bitTT, &e.Title
		case kR:
			bit, s = bitR, &e.Referrer
		case kL:
			bit, s = bitL, &e.Language
		case kSR:
			bit, s = bitSR, &e.Screen
		case kC:
			bit, s = bitC, &e.Country
		case kRG:
			bit, s = bitRG, &e.Region
		case kCI:
			bit, s = bitCI, &e.City
		case kB:
			bit, s = bitB, &e.Browser
		case kBV:
			bit, s = bitBV, &e.BrowserVer
		case kO:
			bit, s = bitO, &e.OS
		case kD:
			bit, s = bitD, &e.Device
		case kPS:
			bit = bitPS
			e.Params, err = r.strMap(recentParamKeys)
		case kPN:
			bit = bitPN
			e.NumParams, err = r.floatMap()
		case kUP:
			bit = bitUP
			e.UserProps, err = r.strMap(recentPropKeys)
		case kCL:
			bit = bitCL
			v, err = r.int()
			e.Client = uint64(v)
		case kCU:
			bit, s = bitCU, &e.Currency
		case kTI:
			bit, s = bitTI, &e.TransactionID
		case kVA:
			bit = bitVA
			e.Value, err = r.float()
		case kTX:
			bit = bitTX
			e.Tax, err = r.float()
		case kSH:
			bit = bitSH
			e.Shipping, err = r.float()
		default: // items ("it") and anything else: msgpack
			return errSlowPath
		}
		if s != nil {
			*s, err = r.field(fieldSlot(bit))
		}
		if err != nil {
			return err
		}
		if seen&bit != 0 {
			return errSlowPath
		}
		seen |= bit
	}
	return nil
}

// strMap reads a map of strings; its keys and values are taken from the
// caches r.params[keys] and r.params[keys+1].
func (r *batchReader) strMap(keys int) (map[string]string, error) {
	start := r.i
	n, err := r.mapLen()
	if err != nil {
		return nil, err
	}
	shared, end, ok := sharedMap(r, r.strMaps, start, n)
	if ok {
		return shared, nil
	}
	m := make(map[string]string, n)
	for range n {
		k, err := r.recentStr(keys)
		if err != nil {
			return nil, err
		}
		v, err := r.recentStr(keys + 1)
		if err != nil {
			return nil, err
		}
		m[k] = v
	}
	shareMap(r, r.strMaps, start, end, m)
	return m, nil
}

func (r *batchReader) floatMap() (map[string]float64, error) {
	start := r.i
	n, err := r.mapLen()
	if err != nil {
		return nil, err
	}
	shared, end, ok := sharedMap(r, r.numMaps, start, n)
	if ok {
		return shared, nil
	}
	m := make(map[string]float64, n)
	for range n {
		k, err := r.recentStr(recentNumKeys)
		if err != nil {
			return nil, err
		}
		v, err := r.float()
		if err != nil {
			return nil, err
		}
		m[k] = v
	}
	shareMap(r, r.numMaps, start, end, m)
	return m, nil
}

// next returns the next n bytes.
func (r *batchReader) next(n int) ([]byte, error) {
	if n < 0 || n > len(r.b)-r.i {
		return nil, errSlowPath
	}
	p := r.b[r.i : r.i+n]
	r.i += n
	return p, nil
}

func (r *batchReader) code() (byte, error) {
	if r.i >= len(r.b) {
		return 0, errSlowPath
	}
	c := r.b[r.i]
	r.i++
	return c, nil
}

// length reads the 1-, 2- or 4-byte big-endian length after a code.
func (r *batchReader) length(size int) (int, error) {
	p, err := r.next(size)
	if err != nil {
		return 0, err
	}
	switch size {
	case 1:
		return int(p[0]), nil
	case 2:
		return int(binary.BigEndian.Uint16(p)), nil
	}
	return int(binary.BigEndian.Uint32(p)), nil
}

func (r *batchReader) mapLen() (int, error) {
	c, err := r.code()
	switch {
	case err != nil:
		return 0, err
	case c >= 0x80 && c <= 0x8f:
		return int(c & 0x0f), nil
	case c == 0xde:
		return r.length(2)
	case c == 0xdf:
		return r.length(4)
	}
	return 0, errSlowPath
}

func (r *batchReader) arrayLen() (int, error) {
	c, err := r.code()
	switch {
	case err != nil:
		return 0, err
	case c >= 0x90 && c <= 0x9f:
		return int(c & 0x0f), nil
	case c == 0xdc:
		return r.length(2)
	case c == 0xdd:
		return r.length(4)
	}
	return 0, errSlowPath
}

// raw returns the bytes of a string (fixstr, str8, str16, str32).
func (r *batchReader) raw() ([]byte, error) {
	if p, ok := r.fixstr(); ok { // every key, most values
		return p, nil
	}
	return r.rawLong()
}

// fixstr reads a fixstr's bytes; false: the next value is not a whole
// fixstr, and r stays.
func (r *batchReader) fixstr() ([]byte, bool) {
	if b := r.b[r.i:]; len(b) > 0 && b[0]&0xe0 == 0xa0 && int(b[0]&0x1f) < len(b) {
		n := int(b[0] & 0x1f)
		r.i += 1 + n
		return b[1 : 1+n], true
	}
	return nil, false
}

// rawLong is raw for every form of string.
func (r *batchReader) rawLong() ([]byte, error) {
	c, err := r.code()
	var n int
	switch {
	case err != nil:
		return nil, err
	case c >= 0xa0 && c <= 0xbf:
		n = int(c & 0x1f)
	case c == 0xd9:
		n, err = r.length(1)
	case c == 0xda:
		n, err = r.length(2)
	case c == 0xdb:
		n, err = r.length(4)
	default:
		return nil, errSlowPath
	}
	if err != nil {
		return nil, err
	}
	return r.next(n)
}

// key reads a map key as a number: its length in the top byte, then its
// bytes (kVER, kS …). Keys of no field (longer, empty) are 0.
func (r *batchReader) key() (uint32, error) {
	// A fixstr of one or two bytes (every key of an event), inlined.
	if i := r.i; i+2 < len(r.b) {
		switch r.b[i] {
		case 0xa1:
			r.i = i + 2
			return 1<<24 | uint32(r.b[i+1])<<16, nil
		case 0xa2:
			r.i = i + 3
			return 2<<24 | uint32(r.b[i+1])<<16 | uint32(r.b[i+2])<<8, nil
		}
	}
	return r.keyLong()
}

// keyLong is key for every form of string.
func (r *batchReader) keyLong() (uint32, error) {
	p, err := r.raw()
	if err != nil {
		return 0, err
	}
	switch len(p) {
	case 1:
		return 1<<24 | uint32(p[0])<<16, nil
	case 2:
		return 2<<24 | uint32(p[0])<<16 | uint32(p[1])<<8, nil
	case 3:
		return 3<<24 | uint32(p[0])<<16 | uint32(p[1])<<8 | uint32(p[2]), nil
	}
	return 0, nil
}

// str reads a string value, shared with the batch's equal ones.
func (r *batchReader) str() (string, error) {
	p, err := r.raw()
	if err != nil || len(p) == 0 {
		return "", err
	}
	return r.interned(p), nil
}

// interned is p as a string, shared with the equal ones read before.
func (r *batchReader) interned(p []byte) string {
	if s, ok := r.intern[string(p)]; ok {
		return s
	}
	s := string(p)
	if len(r.intern) < maxInterned {
		r.intern[s] = s
	}
	return s
}

// field reads the string value of an event's field: when it equals the
// same field of the previous event it is that string, taken without a
// look-up. A visitor's events follow each other in a batch, so most
// fields of most events (host, language, screen, geo, browser, often
// page and title) repeat the previous event's; the rest are interned.
func (r *batchReader) field(slot int) (string, error) {
	// A fixstr (nearly every value) read without a call: raw is one, and
	// an event has a dozen texts.
	p, ok := r.fixstr()
	if !ok {
		var err error
		if p, err = r.rawLong(); err != nil {
			return "", err
		}
	}
	if len(p) == 0 {
		return "", nil
	}
	if prev := r.last[slot]; string(p) == prev { // compared: no allocation
		return prev, nil
	}
	s := r.interned(p)
	r.last[slot] = s
	return s, nil
}

// name reads an event's name: one of the names read last (r.names), or
// interned.
func (r *batchReader) name() (string, error) { return r.cachedStr(&r.names) }

// recentStr reads a string of the parameters' cache c (r.params[c]).
func (r *batchReader) recentStr(c int) (string, error) { return r.cachedStr(&r.params[c]) }

// cachedStr reads a string value: an entry of c when one equals it, else
// interned and added to c.
func (r *batchReader) cachedStr(c *recent) (string, error) {
	p, ok := r.fixstr() // names, parameters' keys and most values
	if !ok {
		var err error
		if p, err = r.rawLong(); err != nil {
			return "", err
		}
	}
	if len(p) == 0 {
		return "", nil
	}
	if s, ok := c.find(p); ok {
		return s, nil
	}
	s := r.interned(p)
	c.add(s)
	return s, nil
}

// int reads any integer as msgpack's decoder does: signed forms sign
// extended, uint64 as its bits.
func (r *batchReader) int() (int64, error) {
	b := r.b[r.i:]
	if len(b) == 0 {
		return 0, errSlowPath
	}
	c := b[0]
	if c <= 0x7f || c >= 0xe0 { // positive and negative fixint
		r.i++
		return int64(int8(c)), nil
	}
	var size int
	switch c {
	case 0xcc, 0xd0:
		size = 1
	case 0xcd, 0xd1:
		size = 2
	case 0xce, 0xd2:
		size = 4
	case 0xcf, 0xd3:
		size = 8
	default:
		return 0, errSlowPath
	}
	if len(b) <= size {
		return 0, errSlowPath
	}
	r.i += 1 + size
	p := b[1 : 1+size]
	switch c {
	case 0xcc:
		return int64(p[0]), nil
	case 0xd0:
		return int64(int8(p[0])), nil
	case 0xcd:
		return int64(binary.BigEndian.Uint16(p)), nil
	case 0xd1:
		return int64(int16(binary.BigEndian.Uint16(p))), nil
	case 0xce:
		return int64(binary.BigEndian.Uint32(p)), nil
	case 0xd2:
		return int64(int32(binary.BigEndian.Uint32(p))), nil
	}
	return int64(binary.BigEndian.Uint64(p)), nil
}

// float reads a float64 (or float32) value.
func (r *batchReader) float() (float64, error) {
	c, err := r.code()
	if err != nil {
		return 0, err
	}
	switch c {
	case 0xcb:
		p, err := r.next(8)
		if err != nil {
			return 0, err
		}
		return math.Float64frombits(binary.BigEndian.Uint64(p)), nil
	case 0xca:
		p, err := r.next(4)
		if err != nil {
			return 0, err
		}
		return float64(math.Float32frombits(binary.BigEndian.Uint32(p))), nil
	}
	return 0, errSlowPath
}
