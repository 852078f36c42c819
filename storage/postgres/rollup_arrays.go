package postgres

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// Decoding the counters' arrays: a report summing a kind's counters over
// 30 days reads two or three arrays of a few thousand integers a day, and
// pgx decodes each element through its generic array codec. The binary
// form of a one-dimensional integer array is a header and, per element,
// its length and its big-endian value; rawIntArray reads it in one loop.

// errArrayShape: an array that is not one-dimensional or holds a NULL.
var errArrayShape = errors.New("not a one-dimensional array without NULLs")

// rawIntArrays reports whether the columns cols of fds come in the binary
// form of int4[] or int8[] (as pgx asks for them in the extended
// protocol; the simple protocol sends text, which pgx decodes instead).
func rawIntArrays(fds []pgconn.FieldDescription, cols ...int) bool {
	for _, i := range cols {
		if i >= len(fds) || fds[i].Format != pgtype.BinaryFormatCode ||
			(fds[i].DataTypeOID != pgtype.Int4ArrayOID && fds[i].DataTypeOID != pgtype.Int8ArrayOID) {
			return false
		}
	}
	return true
}

// rawIntArray decodes src, an int4[] or int8[] in binary form (nil: SQL
// NULL, decoded as nil), into dst's storage, converting each element to T.
// An element of the wrong size or a NULL element is an error.
func rawIntArray[T int32 | int64](src []byte, dst []T) ([]T, error) {
	if src == nil {
		return nil, nil
	}
	if len(src) < 12 {
		return nil, fmt.Errorf("decode integer array: %d bytes of header", len(src))
	}
	ndim := int32(binary.BigEndian.Uint32(src))
	if ndim == 0 {
		return dst[:0], nil
	}
	if ndim != 1 || len(src) < 20 {
		return nil, fmt.Errorf("decode integer array: %w", errArrayShape)
	}
	n := int(int32(binary.BigEndian.Uint32(src[12:])))
	rest := src[20:]
	if n < 0 || n > len(rest)/4 {
		return nil, fmt.Errorf("decode integer array: %d elements in %d bytes", n, len(rest))
	}
	if cap(dst) < n {
		dst = make([]T, n)
	}
	dst = dst[:n]
	for i := range dst {
		if len(rest) < 4 {
			return nil, fmt.Errorf("decode integer array: element %d of %d cut short", i, n)
		}
		size := int32(binary.BigEndian.Uint32(rest))
		rest = rest[4:]
		switch {
		case size == 4 && len(rest) >= 4:
			dst[i] = T(int32(binary.BigEndian.Uint32(rest)))
		case size == 8 && len(rest) >= 8:
			v := int64(binary.BigEndian.Uint64(rest))
			if int64(T(v)) != v {
				return nil, fmt.Errorf("decode integer array: element %d: %d out of range", i, v)
			}
			dst[i] = T(v)
		case size < 0:
			return nil, fmt.Errorf("decode integer array: element %d: %w", i, errArrayShape)
		default:
			return nil, fmt.Errorf("decode integer array: element %d of %d bytes in %d", i, size, len(rest))
		}
		rest = rest[size:]
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("decode integer array: %d bytes after %d elements", len(rest), n)
	}
	return dst, nil
}
