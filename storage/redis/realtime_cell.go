package redis

import (
	"encoding/binary"

	"github.com/avila-analytics/avila/protocol"
)

// appendCell appends a cell's field in a site minute's events hash:
// exactly what msgpack.Marshal(&c) writes (a map of the seven fields by
// name; strings in their shortest form, Visitor as a uint64 in 8 bytes),
// which nodes of earlier versions write and every node reads with
// decodeCell, built without reflection: a batch writes one per cell.
func appendCell(dst []byte, c *Cell) []byte {
	dst = append(dst, 0x87) // map of 7
	dst = protocol.AppendString(protocol.AppendString(dst, "EventName"), c.EventName)
	dst = protocol.AppendString(protocol.AppendString(dst, "Country"), c.Country)
	dst = protocol.AppendString(protocol.AppendString(dst, "City"), c.City)
	dst = protocol.AppendString(protocol.AppendString(dst, "Device"), c.Device)
	dst = protocol.AppendString(protocol.AppendString(dst, "Screen"), c.Screen)
	dst = binary.BigEndian.AppendUint64(append(protocol.AppendString(dst, "Visitor"), 0xcf), c.Visitor)
	dst = protocol.AppendString(dst, "Active")
	if c.Active {
		return append(dst, 0xc3)
	}
	return append(dst, 0xc2)
}
