package queue

import (
	"bytes"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// encryptPlain seals, in tx, every value a queue file written before
// encryption holds in the clear: pending events, the wire part of sealed
// and rejected segments, and meta values. It returns how many it sealed.
// It runs once, in the transaction that stores the key check, so a file is
// either wholly plain or wholly sealed.
func (q *Queue) encryptPlain(tx *bolt.Tx) (int, error) {
	n := 0
	seal := func(name []byte, f func(k, v []byte) ([]byte, error)) error {
		b := tx.Bucket(name)
		var keys, vals [][]byte
		err := b.ForEach(func(k, v []byte) error {
			if bytes.Equal(name, bucketMeta) && (bytes.Equal(k, keyAgentID) || bytes.Equal(k, keyCheck)) {
				return nil
			}
			nv, err := f(k, v)
			if err != nil {
				return fmt.Errorf("encrypt %s %x: %w", name, k, err)
			}
			keys = append(keys, append([]byte(nil), k...))
			vals = append(vals, nv)
			return nil
		})
		if err != nil {
			return err
		}
		// bbolt forbids writes while iterating; put after.
		for i := range keys {
			if err := b.Put(keys[i], vals[i]); err != nil {
				return err
			}
		}
		n += len(keys)
		return nil
	}
	err := seal(bucketPending, func(_, v []byte) ([]byte, error) { return q.seal.seal(v, aadPending), nil })
	if err == nil {
		err = seal(bucketSegments, func(k, v []byte) ([]byte, error) { return q.sealRecord(k, v) })
	}
	if err == nil {
		err = seal(bucketRejected, func(k, v []byte) ([]byte, error) {
			if len(v) < 2 || len(v) < 2+int(binary.BigEndian.Uint16(v)) {
				return nil, fmt.Errorf("rejected record shorter than its reason")
			}
			n := 2 + int(binary.BigEndian.Uint16(v))
			rec, err := q.sealRecord(k, v[n:])
			if err != nil {
				return nil, err
			}
			return append(append([]byte(nil), v[:n]...), rec...), nil
		})
	}
	if err == nil {
		err = seal(bucketMeta, func(k, v []byte) ([]byte, error) { return q.seal.seal(v, k), nil })
	}
	return n, err
}

// sealRecord turns a plain segment record (header, wire batch) into a
// sealed one (header, sealed wire batch).
func (q *Queue) sealRecord(seqKey, rec []byte) ([]byte, error) {
	if len(rec) < segHeaderLen {
		return nil, fmt.Errorf("segment record of %d bytes is shorter than its header", len(rec))
	}
	out := append([]byte(nil), rec[:segHeaderLen]...)
	return append(out, q.seal.seal(rec[segHeaderLen:], seqKey)...), nil
}
