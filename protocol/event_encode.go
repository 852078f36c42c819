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
	n := 4 // s, t, n, v: always present
	for _, present := range [...]bool{
		e.User != 0, e.Client != 0, e.SessionID != 0, e.SessionNum != 0, e.Flags != 0, e.EngageMs != 0,
		e.Host != "", e.Path != "", e.Title != "", e.Referrer != "", e.Language != "", e.Screen != "",
		e.Country != "", e.Region != "", e.City != "", e.Browser != "", e.BrowserVer != "", e.OS != "", e.Device != "",
		len(e.Params) > 0, len(e.NumParams) > 0, len(e.UserProps) > 0,
		e.Currency != "", e.Value != 0, e.Tax != 0, e.Shipping != 0, e.TransactionID != "", len(e.Items) > 0,
	} {
		if present {
			n++
		}
	}
	dst = appendMapLen(dst, n)
	dst = appendStr(dst, "s")
	dst = append(dst, 0xce) // uint32
	dst = binary.BigEndian.AppendUint32(dst, e.Site)
	dst = appendStr(dst, "t")
	dst = appendInt64(dst, e.TimeMicros)
	dst = appendStr(dst, "n")
	dst = appendStr(dst, e.Name)
	dst = appendStr(dst, "v")
	dst = append(dst, 0xcf) // uint64
	dst = binary.BigEndian.AppendUint64(dst, e.Visitor)
	if e.User != 0 {
		dst = appendStr(dst, "u")
		dst = append(dst, 0xcf)
		dst = binary.BigEndian.AppendUint64(dst, e.User)
	}
	if e.Client != 0 {
		dst = appendStr(dst, "cl")
		dst = append(dst, 0xcf)
		dst = binary.BigEndian.AppendUint64(dst, e.Client)
	}
	if e.SessionID != 0 {
		dst = appendStr(dst, "si")
		dst = appendInt64(dst, e.SessionID)
	}
	if e.SessionNum != 0 {
		dst = appendStr(dst, "sc")
		dst = append(dst, 0xd2) // int32
		dst = binary.BigEndian.AppendUint32(dst, uint32(e.SessionNum))
	}
	if e.Flags != 0 {
		dst = appendStr(dst, "f")
		dst = append(dst, 0xcc, e.Flags) // uint8
	}
	if e.EngageMs != 0 {
		dst = appendStr(dst, "e")
		dst = appendInt64(dst, e.EngageMs)
	}
	for _, f := range [...]struct{ key, val string }{
		{"h", e.Host}, {"p", e.Path}, {"tt", e.Title}, {"r", e.Referrer}, {"l", e.Language}, {"sr", e.Screen},
		{"c", e.Country}, {"rg", e.Region}, {"ci", e.City}, {"b", e.Browser}, {"bv", e.BrowserVer},
		{"o", e.OS}, {"d", e.Device},
	} {
		if f.val != "" {
			dst = appendStr(dst, f.key)
			dst = appendStr(dst, f.val)
		}
	}
	dst = appendParamFields(dst, e)
	if e.Currency != "" {
		dst = appendStr(dst, "cu")
		dst = appendStr(dst, e.Currency)
	}
	for _, f := range [...]struct {
		key string
		val float64
	}{{"va", e.Value}, {"tx", e.Tax}, {"sh", e.Shipping}} {
		if f.val != 0 {
			dst = appendStr(dst, f.key)
			dst = appendFloat64(dst, f.val)
		}
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
