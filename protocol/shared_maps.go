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

// sharedStrMap returns the map of strings already decoded from the
// MessagePack at r.b[start:] whose entries (n of them) follow r.i, with
// r past it, or ok false and r unmoved. end is where that MessagePack
// ends, -1 when the map is not to be shared.
func (r *batchReader) sharedStrMap(start, n int) (m map[string]string, end int, ok bool) {
	if r.maps == nil {
		return nil, -1, false
	}
	at := r.i
	if !r.skipMap(n, false) || r.i-start > maxSharedMapBytes {
		r.i = at
		return nil, -1, false
	}
	end, r.i = r.i, at
	m, ok = r.maps.str[string(r.b[start:end])] // compared: no allocation
	if ok {
		r.i = end
	}
	return m, end, ok
}

// sharedNumMap is sharedStrMap for maps of numbers.
func (r *batchReader) sharedNumMap(start, n int) (m map[string]float64, end int, ok bool) {
	if r.maps == nil {
		return nil, -1, false
	}
	at := r.i
	if !r.skipMap(n, true) || r.i-start > maxSharedMapBytes {
		r.i = at
		return nil, -1, false
	}
	end, r.i = r.i, at
	m, ok = r.maps.num[string(r.b[start:end])]
	if ok {
		r.i = end
	}
	return m, end, ok
}

// shareStrMap keeps m, decoded from r.b[start:end], for the events after.
func (r *batchReader) shareStrMap(start, end int, m map[string]string) {
	if end >= 0 && len(r.maps.str) < maxSharedMaps {
		r.maps.str[string(r.b[start:end])] = m
	}
}

// shareNumMap is shareStrMap for maps of numbers.
func (r *batchReader) shareNumMap(start, end int, m map[string]float64) {
	if end >= 0 && len(r.maps.num) < maxSharedMaps {
		r.maps.num[string(r.b[start:end])] = m
	}
}
