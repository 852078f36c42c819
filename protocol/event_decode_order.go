package protocol

import (
	"encoding/binary"
	"math/bits"
)

// placeMemo is where the place fields (Language … Device) of the event
// read last were written in the batch, for the next event to take them
// when its own are written alike: a visitor's events follow each other
// in a batch and carry the same language, screen, geo, browser and
// device, which AppendEvent writes one after the other.
type placeMemo struct {
	from  *Event // nil: none (the event read last had its fields in another order)
	at    int    // where their entries start in the batch
	len   int    // the bytes of their entries
	n     int    // the entries
	fresh uint32 // their bits (seen)
}

// The bits of the place fields.
const placeBits = bitL | bitSR | bitC | bitRG | bitCI | bitB | bitBV | bitO | bitD

// inOrder reads the entries of an event's map of n entries that come in
// the order AppendEvent (and msgpack.Marshal) writes the fields, as long
// as they do: all of them for an agent's events, each key tried once
// at its place instead of looked up. It returns the entries read and
// their fields' bits; anyOrder reads the rest. The value of each entry
// is read as anyOrder reads it, but for the place fields, taken from
// the event before when their entries' bytes are its (placeMemo).
func (r *batchReader) inOrder(e *Event, n int) (k int, seen uint32, err error) {
	if k < n && r.at1('s') {
		var v uint64
		var ok bool
		if v, ok = r.fixed4(0xce); !ok {
			v, err = r.intBits()
		}
		e.Site, k, seen = uint32(v), k+1, seen|bitS
	}
	if err == nil && k < n && r.at1('t') {
		var v uint64
		var ok bool
		if v, ok = r.fixed8(0xd3); !ok {
			v, err = r.intBits()
		}
		e.TimeMicros, k, seen = int64(v), k+1, seen|bitT
	}
	if err == nil && k < n && r.at1('n') {
		e.Name, err = r.name()
		k, seen = k+1, seen|bitN
	}
	if err == nil && k < n && r.at1('v') {
		var ok bool
		if e.Visitor, ok = r.fixed8(0xcf); !ok {
			e.Visitor, err = r.intBits()
		}
		k, seen = k+1, seen|bitV
	}
	if err == nil && k < n && r.at1('u') {
		var ok bool
		if e.User, ok = r.fixed8(0xcf); !ok {
			e.User, err = r.intBits()
		}
		k, seen = k+1, seen|bitU
	}
	if err == nil && k < n && r.at2('c', 'l') {
		var ok bool
		if e.Client, ok = r.fixed8(0xcf); !ok {
			e.Client, err = r.intBits()
		}
		k, seen = k+1, seen|bitCL
	}
	if err == nil && k < n && r.at2('s', 'i') {
		var v uint64
		var ok bool
		if v, ok = r.fixed8(0xd3); !ok {
			v, err = r.intBits()
		}
		e.SessionID, k, seen = int64(v), k+1, seen|bitSI
	}
	if err == nil && k < n && r.at2('s', 'c') {
		var v uint64
		var ok bool
		if v, ok = r.fixed4(0xd2); !ok {
			v, err = r.intBits()
		}
		e.SessionNum, k, seen = int32(v), k+1, seen|bitSC
	}
	if err == nil && k < n && r.at1('f') {
		var v uint64
		var ok bool
		if v, ok = r.fixed1(0xcc); !ok {
			v, err = r.intBits()
		}
		e.Flags, k, seen = uint8(v), k+1, seen|bitF
	}
	if err == nil && k < n && r.at1('e') {
		var v uint64
		var ok bool
		if v, ok = r.fixed8(0xd3); !ok {
			v, err = r.intBits()
		}
		e.EngageMs, k, seen = int64(v), k+1, seen|bitE
	}
	if err == nil && k < n && r.at1('h') {
		e.Host, err = r.field(fieldSlot(bitH))
		k, seen = k+1, seen|bitH
	}
	if err == nil && k < n && r.at1('p') {
		e.Path, err = r.field(fieldSlot(bitP))
		k, seen = k+1, seen|bitP
	}
	if err == nil && k < n && r.at2('t', 't') {
		e.Title, err = r.field(fieldSlot(bitTT))
		k, seen = k+1, seen|bitTT
	}
	if err == nil && k < n && r.at1('r') {
		e.Referrer, err = r.field(fieldSlot(bitR))
		k, seen = k+1, seen|bitR
	}
	if err != nil {
		return k, seen, err
	}
	if k, seen, err = r.placeInOrder(e, n, k, seen); err != nil {
		return k, seen, err
	}
	if k < n && r.at2('p', 's') {
		e.Params, err = r.strMap(recentParamKeys)
		k, seen = k+1, seen|bitPS
	}
	if err == nil && k < n && r.at2('p', 'n') {
		e.NumParams, err = r.floatMap()
		k, seen = k+1, seen|bitPN
	}
	if err == nil && k < n && r.at2('u', 'p') {
		e.UserProps, err = r.strMap(recentPropKeys)
		k, seen = k+1, seen|bitUP
	}
	if err == nil && k < n && r.at2('c', 'u') {
		e.Currency, err = r.field(fieldSlot(bitCU))
		k, seen = k+1, seen|bitCU
	}
	if err == nil && k < n && r.at2('v', 'a') {
		e.Value, err = r.float()
		k, seen = k+1, seen|bitVA
	}
	if err == nil && k < n && r.at2('t', 'x') {
		e.Tax, err = r.float()
		k, seen = k+1, seen|bitTX
	}
	if err == nil && k < n && r.at2('s', 'h') {
		e.Shipping, err = r.float()
		k, seen = k+1, seen|bitSH
	}
	if err == nil && k < n && r.at2('t', 'i') {
		e.TransactionID, err = r.field(fieldSlot(bitTI))
		k, seen = k+1, seen|bitTI
	}
	return k, seen, err
}

// placeInOrder is inOrder for the place fields, k entries of n read
// before with the fields seen. When the bytes ahead start with those of
// the place fields' entries of the event before, and they are among
// the event's entries, their values are that event's: the same bytes
// read the same. The fields after the last of those, in order, are read
// one by one (those before it, written again, are repeated keys: the
// entries after are not in order, and anyOrder finds them repeated).
func (r *batchReader) placeInOrder(e *Event, n, k int, seen uint32) (int, uint32, error) {
	at, k0 := r.i, k
	if m := &r.place; m.from != nil && k+m.n <= n && m.len <= len(r.b)-r.i &&
		string(r.b[r.i:r.i+m.len]) == string(r.b[m.at:m.at+m.len]) { // compared: no allocation
		p := m.from
		e.Language, e.Screen, e.Country, e.Region, e.City = p.Language, p.Screen, p.Country, p.Region, p.City
		e.Browser, e.BrowserVer, e.OS, e.Device = p.Browser, p.BrowserVer, p.OS, p.Device
		r.i += m.len
		k += m.n
		seen |= m.fresh
	}
	var err error
	// The place fields' bits are bitL and those above it, in order: the
	// first to read is the one after the last taken (none: 0).
	switch bits.Len32((seen & placeBits) / bitL) {
	case 0:
		if k < n && r.at1('l') {
			e.Language, err = r.field(fieldSlot(bitL))
			k, seen = k+1, seen|bitL
		}
		fallthrough
	case 1:
		if err == nil && k < n && r.at2('s', 'r') {
			e.Screen, err = r.field(fieldSlot(bitSR))
			k, seen = k+1, seen|bitSR
		}
		fallthrough
	case 2:
		if err == nil && k < n && r.at1('c') {
			e.Country, err = r.field(fieldSlot(bitC))
			k, seen = k+1, seen|bitC
		}
		fallthrough
	case 3:
		if err == nil && k < n && r.at2('r', 'g') {
			e.Region, err = r.field(fieldSlot(bitRG))
			k, seen = k+1, seen|bitRG
		}
		fallthrough
	case 4:
		if err == nil && k < n && r.at2('c', 'i') {
			e.City, err = r.field(fieldSlot(bitCI))
			k, seen = k+1, seen|bitCI
		}
		fallthrough
	case 5:
		if err == nil && k < n && r.at1('b') {
			e.Browser, err = r.field(fieldSlot(bitB))
			k, seen = k+1, seen|bitB
		}
		fallthrough
	case 6:
		if err == nil && k < n && r.at2('b', 'v') {
			e.BrowserVer, err = r.field(fieldSlot(bitBV))
			k, seen = k+1, seen|bitBV
		}
		fallthrough
	case 7:
		if err == nil && k < n && r.at1('o') {
			e.OS, err = r.field(fieldSlot(bitO))
			k, seen = k+1, seen|bitO
		}
		fallthrough
	case 8:
		if err == nil && k < n && r.at1('d') {
			e.Device, err = r.field(fieldSlot(bitD))
			k, seen = k+1, seen|bitD
		}
	}
	if k > k0 {
		r.place = placeMemo{from: e, at: at, len: r.i - at, n: k - k0, fresh: seen & placeBits}
	} else {
		r.place.from = nil // an empty memo would match any event
	}
	return k, seen, err
}

// fieldSlot is the slot of a text field's previous value (batchReader.last).
func fieldSlot(bit uint32) int { return bits.TrailingZeros32(bit) }

// at1 reports whether the next key is the fixstr of the one byte c, and
// if so moves past it. A value follows a key: one byte at least.
func (r *batchReader) at1(c byte) bool {
	if p := r.b[r.i:]; len(p) > 2 && binary.LittleEndian.Uint16(p) == 0xa1|uint16(c)<<8 {
		r.i += 2
		return true
	}
	return false
}

// at2 is at1 for the key of the two bytes c1, c2.
func (r *batchReader) at2(c1, c2 byte) bool {
	if p := r.b[r.i:]; len(p) > 3 && binary.LittleEndian.Uint32(p)&0xffffff == 0xa2|uint32(c1)<<8|uint32(c2)<<16 {
		r.i += 3
		return true
	}
	return false
}

// fixed8 reads an integer written as code and 8 bytes (the form of its
// field's declared type, as AppendEvent writes it) as its bits; false:
// it is not written so (intBits reads it).
func (r *batchReader) fixed8(code byte) (uint64, bool) {
	if p := r.b[r.i:]; len(p) > 8 && p[0] == code {
		r.i += 9
		return binary.BigEndian.Uint64(p[1:9]), true
	}
	return 0, false
}

// fixed4 is fixed8 for a 4-byte form; its field keeps the low 32 bits.
func (r *batchReader) fixed4(code byte) (uint64, bool) {
	if p := r.b[r.i:]; len(p) > 4 && p[0] == code {
		r.i += 5
		return uint64(binary.BigEndian.Uint32(p[1:5])), true
	}
	return 0, false
}

// fixed1 is fixed8 for a 1-byte form; its field keeps the low 8 bits.
func (r *batchReader) fixed1(code byte) (uint64, bool) {
	if p := r.b[r.i:]; len(p) > 1 && p[0] == code {
		r.i += 2
		return uint64(p[1]), true
	}
	return 0, false
}

// intBits is int's integer as a uint64 of its bits.
func (r *batchReader) intBits() (uint64, error) {
	v, err := r.int()
	return uint64(v), err
}
