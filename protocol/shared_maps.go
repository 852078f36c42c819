package protocol

// sharedMaps holds the parameter maps (Params, NumParams, UserProps) an
// EventDecoder decoded, by their MessagePack bytes, so events whose maps
// are written alike share one map instead of a map each: events of one
// name carry the same few parameters, often with the same values
// (percent_scrolled 90, outbound true). A map is a pointerful object of a
// few hundred bytes; a derivation decodes tens of thousands of events.
// The events of an EventDecoder and of DecodeBatchInto (a derivation's,
// the ingest's) are read, never changed, so sharing is safe there;
// DecodeBatch's events, given to a caller to keep, get maps of their own.
type sharedMaps struct {
	str map[string]map[string]string
	num map[string]map[string]float64
}

func newSharedMaps() *sharedMaps {
	return &sharedMaps{str: make(map[string]map[string]string), num: make(map[string]map[string]float64)}
}

// Bounds of sharedMaps: distinct maps kept per type, and the size of the
// MessagePack of a map worth a look-up (larger maps are seldom equal).
const (
	maxSharedMaps     = 4096
	maxSharedMapBytes = 256
)

// skipMap moves r past a map of n entries (keys strings, values strings
// or, with floats, numbers) and reports whether it could.
func (r *batchReader) skipMap(n int, floats bool) bool {
	for range n {
		if _, err := r.raw(); err != nil {
			return false
		}
		var err error
		if floats {
			_, err = r.float()
		} else {
			_, err = r.raw()
		}
		if err != nil {
			return false
		}
	}
	return true
}

// sharedMap returns the map already decoded from the MessagePack at
// r.b[start:] whose entries (n of them) follow r.i, from set, with r past
// it, or ok false and r unmoved. end is where that MessagePack ends, -1
// when the map is not to be shared (set nil: no sharing; or too large).
func sharedMap[V string | float64](r *batchReader, set map[string]map[string]V, start, n int) (m map[string]V, end int, ok bool) {
	if set == nil {
		return nil, -1, false
	}
	_, floats := any(*new(V)).(float64)
	at := r.i
	if !r.skipMap(n, floats) || r.i-start > maxSharedMapBytes {
		r.i = at
		return nil, -1, false
	}
	end, r.i = r.i, at
	m, ok = set[string(r.b[start:end])] // compared: no allocation
	if ok {
		r.i = end
	}
	return m, end, ok
}

// shareMap keeps m, decoded from r.b[start:end], in set for the events
// after (end from sharedMap).
func shareMap[V string | float64](r *batchReader, set map[string]map[string]V, start, end int, m map[string]V) {
	if end >= 0 && len(set) < maxSharedMaps {
		set[string(r.b[start:end])] = m
	}
}
