package protocol

import (
	"encoding/binary"
	"math"
)

// AppendEvent appends the MessagePack form of e to dst: the bytes
// msgpack.Marshal(e) writes for Event's struct tags (a map of the fields in
// declaration order, zero omitempty fields left out, integers in their
// declared fixed width, float64 in 8 bytes), written without reflection,
// since every hit the agent takes is encoded once. Map fields' entries come
// in Go's map order, as with msgpack.Marshal.
func AppendEvent(dst []byte, e *Event) []byte {
	// Straight-line code: an array of the fields built and looped over
	// for each event cost more than the encoding itself. Keys are one or
	// two bytes, so their fixstr form is written byte by byte.
	n := 4 // s, t, n, v: always present
	n += count(e.User != 0) + count(e.Client != 0) + count(e.SessionID != 0) + count(e.SessionNum != 0) +
		count(e.Flags != 0) + count(e.EngageMs != 0)
	n += count(e.Host != "") + count(e.Path != "") + count(e.Title != "") + count(e.Referrer != "") +
		count(e.Language != "") + count(e.Screen != "") + count(e.Country != "") + count(e.Region != "") +
		count(e.City != "") + count(e.Browser != "") + count(e.BrowserVer != "") + count(e.OS != "") + count(e.Device != "")
	n += paramFields(e)
	n += count(e.Currency != "") + count(e.Value != 0) + count(e.Tax != 0) + count(e.Shipping != 0) +
		count(e.TransactionID != "") + count(len(e.Items) > 0)
	dst = appendMapLen(dst, n)
	dst = append(dst, 0xa1, 's', 0xce) // uint32
	dst = binary.BigEndian.AppendUint32(dst, e.Site)
	dst = append(dst, 0xa1, 't', 0xd3) // int64
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.TimeMicros))
	dst = appendStr(append(dst, 0xa1, 'n'), e.Name)
	dst = append(dst, 0xa1, 'v', 0xcf) // uint64
	dst = binary.BigEndian.AppendUint64(dst, e.Visitor)
	if e.User != 0 {
		dst = append(dst, 0xa1, 'u', 0xcf)
		dst = binary.BigEndian.AppendUint64(dst, e.User)
	}
	if e.Client != 0 {
		dst = append(dst, 0xa2, 'c', 'l', 0xcf)
		dst = binary.BigEndian.AppendUint64(dst, e.Client)
	}
	if e.SessionID != 0 {
		dst = append(dst, 0xa2, 's', 'i', 0xd3)
		dst = binary.BigEndian.AppendUint64(dst, uint64(e.SessionID))
	}
	if e.SessionNum != 0 {
		dst = append(dst, 0xa2, 's', 'c', 0xd2) // int32
		dst = binary.BigEndian.AppendUint32(dst, uint32(e.SessionNum))
	}
	if e.Flags != 0 {
		dst = append(dst, 0xa1, 'f', 0xcc, e.Flags) // uint8
	}
	if e.EngageMs != 0 {
		dst = append(dst, 0xa1, 'e', 0xd3)
		dst = binary.BigEndian.AppendUint64(dst, uint64(e.EngageMs))
	}
	dst = appendText1(dst, 'h', e.Host)
	dst = appendText1(dst, 'p', e.Path)
	dst = appendText2(dst, 't', 't', e.Title)
	dst = appendText1(dst, 'r', e.Referrer)
	dst = appendText1(dst, 'l', e.Language)
	dst = appendText2(dst, 's', 'r', e.Screen)
	dst = appendText1(dst, 'c', e.Country)
	dst = appendText2(dst, 'r', 'g', e.Region)
	dst = appendText2(dst, 'c', 'i', e.City)
	dst = appendText1(dst, 'b', e.Browser)
	dst = appendText2(dst, 'b', 'v', e.BrowserVer)
	dst = appendText1(dst, 'o', e.OS)
	dst = appendText1(dst, 'd', e.Device)
	dst = appendParamFields(dst, e)
	if e.Currency != "" {
		dst = appendStr(dst, "cu")
		dst = appendStr(dst, e.Currency)
	}
	if e.Value != 0 {
		dst = appendFloat64(append(dst, 0xa2, 'v', 'a'), e.Value)
	}
	if e.Tax != 0 {
		dst = appendFloat64(append(dst, 0xa2, 't', 'x'), e.Tax)
	}
	if e.Shipping != 0 {
		dst = appendFloat64(append(dst, 0xa2, 's', 'h'), e.Shipping)
	}
	if e.TransactionID != "" {
		dst = appendStr(dst, "ti")
		dst = appendStr(dst, e.TransactionID)
	}
	if len(e.Items) > 0 {
		dst = appendStr(dst, "it")
		dst = appendArrayLen(dst, len(e.Items))
		for i := range e.Items {
			dst = appendItem(dst, &e.Items[i])
		}
	}
	return dst
}

// count is 1 for true, 0 for false.
func count(b bool) int {
	if b {
		return 1
	}
	return 0
}

// appendText1 writes the entry of a string field of a one-byte key,
// unless the value is empty (omitempty).
func appendText1(dst []byte, k byte, v string) []byte {
	if v == "" {
		return dst
	}
	return appendStr(append(dst, 0xa1, k), v)
}

// appendText2 is appendText1 for a two-byte key.
func appendText2(dst []byte, k1, k2 byte, v string) []byte {
	if v == "" {
		return dst
	}
	return appendStr(append(dst, 0xa2, k1, k2), v)
}

// appendItem writes an Item as msgpack.Marshal does: a map of its
// non-zero fields in declaration order.
func appendItem(dst []byte, it *Item) []byte {
	strs := [...]struct{ key, val string }{
		{"i", it.ID}, {"n", it.Name}, {"b", it.Brand}, {"c", it.Category}, {"c2", it.Category2},
		{"c3", it.Category3}, {"c4", it.Category4}, {"c5", it.Category5}, {"va", it.Variant},
		{"li", it.ListID}, {"ln", it.ListName}, {"pn", it.PromotionName}, {"af", it.Affiliation}, {"cp", it.Coupon},
	}
	n := 0
	for _, f := range strs {
		if f.val != "" {
			n++
		}
	}
	for _, present := range [...]bool{it.Price != 0, it.Discount != 0, it.Quantity != 0} {
		if present {
			n++
		}
	}
	dst = appendMapLen(dst, n)
	for _, f := range strs {
		if f.val != "" {
			dst = appendStr(dst, f.key)
			dst = appendStr(dst, f.val)
		}
	}
	if it.Price != 0 {
		dst = appendStr(dst, "pr")
		dst = appendFloat64(dst, it.Price)
	}
	if it.Discount != 0 {
		dst = appendStr(dst, "ds")
		dst = appendFloat64(dst, it.Discount)
	}
	if it.Quantity != 0 {
		dst = appendStr(dst, "q")
		dst = appendInt64(dst, it.Quantity)
	}
	return dst
}

// paramFields counts e's non-empty parameter fields: ps, pn, up.
func paramFields(e *Event) int {
	n := 0
	for _, present := range [...]bool{len(e.Params) > 0, len(e.NumParams) > 0, len(e.UserProps) > 0} {
		if present {
			n++
		}
	}
	return n
}

// appendParamFields writes e's non-empty parameter fields (ps, pn, up) as
// map entries, in that order.
func appendParamFields(dst []byte, e *Event) []byte {
	if len(e.Params) > 0 {
		dst = appendStringMap(appendStr(dst, "ps"), e.Params)
	}
	if len(e.NumParams) > 0 {
		dst = appendMapLen(appendStr(dst, "pn"), len(e.NumParams))
		for k, v := range e.NumParams {
			dst = appendFloat64(appendStr(dst, k), v)
		}
	}
	if len(e.UserProps) > 0 {
		dst = appendStringMap(appendStr(dst, "up"), e.UserProps)
	}
	return dst
}

// AppendParams appends e's parameters alone as one MessagePack map of its
// non-empty fields ps, pn and up, keyed and encoded as in an Event (the
// form msgpack.Marshal writes for a struct of those three fields with
// omitempty), or nothing when e has none.
func AppendParams(dst []byte, e *Event) []byte {
	n := paramFields(e)
	if n == 0 {
		return dst
	}
	return appendParamFields(appendMapLen(dst, n), e)
}

func appendFloat64(dst []byte, f float64) []byte {
	dst = append(dst, 0xcb) // float64
	return binary.BigEndian.AppendUint64(dst, math.Float64bits(f))
}

func appendInt64(dst []byte, v int64) []byte {
	dst = append(dst, 0xd3) // int64
	return binary.BigEndian.AppendUint64(dst, uint64(v))
}

func appendStringMap(dst []byte, m map[string]string) []byte {
	dst = appendMapLen(dst, len(m))
	for k, v := range m {
		dst = appendStr(dst, k)
		dst = appendStr(dst, v)
	}
	return dst
}

// appendMapLen writes a map header: fixmap, map16 or map32.
func appendMapLen(dst []byte, n int) []byte { return appendLen(dst, n, 0x80, 0xde) }

// appendArrayLen writes an array header: fixarray, array16 or array32.
func appendArrayLen(dst []byte, n int) []byte { return appendLen(dst, n, 0x90, 0xdc) }

// appendLen writes a map or array header for n entries: fix|n below 16,
// else code16 and 2 bytes, else code16+1 and 4 bytes.
func appendLen(dst []byte, n int, fix, code16 byte) []byte {
	switch {
	case n < 16:
		return append(dst, fix|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(dst, code16), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(dst, code16+1), uint32(n))
}

// AppendString appends s to dst as a MessagePack string in its shortest
// form (fixstr, str8, str16 or str32), as msgpack.Marshal writes it.
func AppendString(dst []byte, s string) []byte { return appendStr(dst, s) }

// appendStr writes a string: fixstr, str8, str16 or str32.
func appendStr(dst []byte, s string) []byte {
	switch n := len(s); {
	case n < 32:
		dst = append(dst, 0xa0|byte(n))
	case n <= math.MaxUint8:
		dst = append(dst, 0xd9, byte(n))
	case n <= math.MaxUint16:
		dst = binary.BigEndian.AppendUint16(append(dst, 0xda), uint16(n))
	default:
		dst = binary.BigEndian.AppendUint32(append(dst, 0xdb), uint32(n))
	}
	return append(dst, s...)
}
