package protocol

import (
	"encoding/binary"
	"errors"
	"math"
	"math/bits"
	"slices"
)

// errSlowPath makes decodeBatchFast give up: the input uses a form of
// MessagePack its plain reader does not take (nil values, binary strings,
// unknown or repeated keys, floats for integers …), valid or not, and
// msgpack.Unmarshal decides.
var errSlowPath = errors.New("protocol: not on the fast path")

// maxInterned bounds the distinct strings one batch decode (or one
// EventDecoder) shares.
const maxInterned = 4096

// maxReusedPlain bounds the decompressed batch an EventDecoder keeps as
// its buffer for the next.
const maxReusedPlain = 4 << 20

// batchReader reads the MessagePack of a batch without reflection. It takes
// the forms AppendBatchHead and AppendEvent write and every other integer
// and string width, and produces what msgpack.Unmarshal does for them
// (integers converted to the field's type as msgpack's decoder converts
// them); anything else is errSlowPath. Repeated string values (host,
// language, browser …) share one string per batch, or per EventDecoder.
type batchReader struct {
	b      []byte
	i      int
	intern map[string]string
	// last holds the previous event's string value of each event field,
	// by the field's bit in event's seen set.
	last [32]string
}

// decodeBatchFast decodes plain (a batch's decompressed MessagePack) into b.
// Its strings are interned in intern.
func decodeBatchFast(plain []byte, b *Batch, intern map[string]string) error {
	r := &batchReader{b: plain, intern: intern}
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
		case "ver":
			bit = 1
			var v int64
			v, err = r.int()
			b.Version = uint8(v)
		case "a":
			bit = 2
			b.AgentID, err = r.str()
		case "q":
			bit = 4
			var v int64
			v, err = r.int()
			b.Seq = uint64(v)
		case "c":
			bit = 8
			b.Created, err = r.int()
		case "e":
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
	n, err := r.mapLen()
	if err != nil {
		return err
	}
	var seen uint32
	for range n {
		key, err := r.key()
		if err != nil {
			return err
		}
		var v int64
		var s *string
		var bit uint32
		switch key {
		case "s":
			bit = 1 << 0
			v, err = r.int()
			e.Site = uint32(v)
		case "t":
			bit = 1 << 1
			e.TimeMicros, err = r.int()
		case "n":
			bit, s = 1<<2, &e.Name
		case "v":
			bit = 1 << 3
			v, err = r.int()
			e.Visitor = uint64(v)
		case "u":
			bit = 1 << 4
			v, err = r.int()
			e.User = uint64(v)
		case "si":
			bit = 1 << 5
			e.SessionID, err = r.int()
		case "sc":
			bit = 1 << 6
			v, err = r.int()
			e.SessionNum = int32(v)
		case "f":
			bit = 1 << 7
			v, err = r.int()
			e.Flags = uint8(v)
		case "e":
			bit = 1 << 8
			e.EngageMs, err = r.int()
		case "h":
			bit, s = 1<<9, &e.Host
		case "p":
			bit, s = 1<<10, &e.Path
		case "tt":
			bit, s = 1<<11, &e.Title
		case "r":
			bit, s = 1<<12, &e.Referrer
		case "l":
			bit, s = 1<<13, &e.Language
		case "sr":
			bit, s = 1<<14, &e.Screen
		case "c":
			bit, s = 1<<15, &e.Country
		case "rg":
			bit, s = 1<<16, &e.Region
		case "ci":
			bit, s = 1<<17, &e.City
		case "b":
			bit, s = 1<<18, &e.Browser
		case "bv":
			bit, s = 1<<19, &e.BrowserVer
		case "o":
			bit, s = 1<<20, &e.OS
		case "d":
			bit, s = 1<<21, &e.Device
		case "ps":
			bit = 1 << 22
			e.Params, err = r.strMap()
		case "pn":
			bit = 1 << 23
			e.NumParams, err = r.floatMap()
		case "up":
			bit = 1 << 24
			e.UserProps, err = r.strMap()
		case "cl":
			bit = 1 << 25
			v, err = r.int()
			e.Client = uint64(v)
		case "cu":
			bit, s = 1<<26, &e.Currency
		case "ti":
			bit, s = 1<<27, &e.TransactionID
		case "va":
			bit = 1 << 28
			e.Value, err = r.float()
		case "tx":
			bit = 1 << 29
			e.Tax, err = r.float()
		case "sh":
			bit = 1 << 30
			e.Shipping, err = r.float()
		default: // items ("it") and anything else: msgpack
			return errSlowPath
		}
		if s != nil {
			*s, err = r.field(bits.TrailingZeros32(bit))
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

func (r *batchReader) strMap() (map[string]string, error) {
	n, err := r.mapLen()
	if err != nil {
		return nil, err
	}
	m := make(map[string]string, n)
	for range n {
		k, err := r.str()
		if err != nil {
			return nil, err
		}
		v, err := r.str()
		if err != nil {
			return nil, err
		}
		m[k] = v
	}
	return m, nil
}

func (r *batchReader) floatMap() (map[string]float64, error) {
	n, err := r.mapLen()
	if err != nil {
		return nil, err
	}
	m := make(map[string]float64, n)
	for range n {
		k, err := r.str()
		if err != nil {
			return nil, err
		}
		v, err := r.float()
		if err != nil {
			return nil, err
		}
		m[k] = v
	}
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

// key reads a map key without keeping it.
func (r *batchReader) key() (string, error) {
	p, err := r.raw()
	return string(p), err // compared only: the conversion does not allocate
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
	p, err := r.raw()
	if err != nil || len(p) == 0 {
		return "", err
	}
	if prev := r.last[slot]; string(p) == prev { // compared: no allocation
		return prev, nil
	}
	s := r.interned(p)
	r.last[slot] = s
	return s, nil
}

// int reads any integer as msgpack's decoder does: signed forms sign
// extended, uint64 as its bits.
func (r *batchReader) int() (int64, error) {
	c, err := r.code()
	if err != nil {
		return 0, err
	}
	if c <= 0x7f || c >= 0xe0 { // positive and negative fixint
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
	p, err := r.next(size)
	if err != nil {
		return 0, err
	}
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
