package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/vmihailenco/msgpack/v5"
)

// Limits a decoder enforces on input from the network.
const (
	MaxBatchEvents  = 100_000  // events in one Batch
	MaxDecodedBytes = 64 << 20 // decompressed size of one Batch
	MaxAgentIDLen   = 64
)

// ErrBadBatch wraps every reason a batch payload is refused; callers answer AckReject.
var ErrBadBatch = errors.New("bad batch")

// ErrNewerVersion is wrapped, beside ErrBadBatch, by the error of a batch
// of a newer protocol version than this build's, whether or not the rest
// of it decodes: every version's batch begins with its "ver" (see
// AppendBatchHead). An aggregator leaves a staged row of a newer version
// to nodes of that version instead of quarantining it.
var ErrNewerVersion = errors.New("newer protocol version")

// zstd encoders and decoders are safe for concurrent EncodeAll/DecodeAll and
// costly to create, so one of each serves the process.
//
// The encoder's window is 1 MiB rather than the default 8 MiB: an agent's
// batch of 5000 events (its default segment size) is about that size before
// compression, so matches are found as before, and the encoder keeps about 4 MB of tables
// and history alive instead of 18 MB. In the agent, whose heap is held
// under a soft limit (24 MiB), those 14 MB made the collector run every few
// milliseconds under load. With lower encoder memory its history holds the
// window and one block (about 1.1 MiB) rather than twice the window, and
// its block buffers start small: the same frames, a megabyte less of the
// agent's live heap. Decoders accept any window up to their limit.
//
// zencSealed is zenc without the frame's content checksum (an xxhash64
// pass over every byte of the batch), for batches whose bytes are
// authenticated end to end by other means (see CompressSealedBatch).
// Decoders check a checksum when a frame has one and take frames without
// one as well, so batches of either encoder decode alike, whichever an
// agent's version wrote.
var (
	zenc, _       = zstd.NewWriter(nil, zencOptions(true)...)
	zencSealed, _ = zstd.NewWriter(nil, zencOptions(false)...)
	zdec, _       = zstd.NewReader(nil, zstd.WithDecoderMaxMemory(MaxDecodedBytes), zstd.WithDecoderConcurrency(0))
)

// zencOptions are the batch encoders' options, with or without the
// frame's content checksum.
func zencOptions(checksum bool) []zstd.EOption {
	return []zstd.EOption{zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1),
		zstd.WithWindowSize(1 << 20), zstd.WithLowerEncoderMem(true), zstd.WithEncoderCRC(checksum)}
}

// EncodeEvent returns the MessagePack form of e, as queued by agents (see
// AppendEvent). The error is always nil; it stays for callers that treat
// encoding as fallible.
func EncodeEvent(e *Event) ([]byte, error) {
	return AppendEvent(make([]byte, 0, 512), e), nil
}

// DecodeEvent parses the MessagePack form of one event.
func DecodeEvent(b []byte, e *Event) error {
	if err := msgpack.Unmarshal(b, e); err != nil {
		return fmt.Errorf("protocol: decode event: %w", err)
	}
	return nil
}

// EncodeBatch returns the compressed wire form of b.
func EncodeBatch(b *Batch) ([]byte, error) {
	plain, err := msgpack.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("protocol: encode batch %s/%d: %w", b.AgentID, b.Seq, err)
	}
	return CompressBatch(make([]byte, 0, len(plain)/3), plain), nil
}

// EncodeRawBatch builds the compressed wire form of a batch from events
// already encoded with EncodeEvent. The error is always nil; it stays for
// callers that treat encoding as fallible.
func EncodeRawBatch(agentID string, seq uint64, createdMicros int64, events [][]byte) ([]byte, error) {
	size := batchHeadMax + len(agentID)
	for _, e := range events {
		size += len(e)
	}
	plain := AppendBatchHead(make([]byte, 0, size), agentID, seq, createdMicros, len(events))
	for _, e := range events {
		plain = append(plain, e...)
	}
	return CompressBatch(make([]byte, 0, len(plain)/3), plain), nil
}

// batchHeadMax bounds AppendBatchHead's output beside the agent id.
const batchHeadMax = 48

// AppendBatchHead appends to dst the MessagePack a batch starts with: the
// envelope msgpack.Marshal writes for Batch's struct tags (a map of ver, a,
// q, c and e, integers in their declared width) up to the header of e's
// array of n events. The n events' own MessagePack (AppendEvent), appended
// after it, complete the batch; CompressBatch makes its wire form. An agent
// builds its segments this way, without decoding what it queued.
func AppendBatchHead(dst []byte, agentID string, seq uint64, createdMicros int64, n int) []byte {
	dst = appendMapLen(dst, 5)
	dst = appendStr(dst, "ver")
	dst = append(dst, 0xcc, Version) // uint8
	dst = appendStr(dst, "a")
	dst = appendStr(dst, agentID)
	dst = appendStr(dst, "q")
	dst = binary.BigEndian.AppendUint64(append(dst, 0xcf), seq) // uint64
	dst = appendStr(dst, "c")
	dst = appendInt64(dst, createdMicros)
	dst = appendStr(dst, "e")
	return appendArrayLen(dst, n)
}

// CompressBatch appends to dst the wire form of a batch's MessagePack.
func CompressBatch(dst, plain []byte) []byte { return zenc.EncodeAll(plain, dst) }

// EncodeEvents returns the wire form of events as a batch of their own
// (AppendBatchHead's envelope with agent "staged", seq 1 and no creation
// time, which nothing reads back): how the aggregator stages events it
// holds decoded, and rewrites a staged row.
func EncodeEvents(events []Event) []byte {
	plain := AppendBatchHead(make([]byte, 0, 64+200*len(events)), "staged", 1, 0, len(events))
	for i := range events {
		plain = AppendEvent(plain, &events[i])
	}
	return CompressBatch(nil, plain)
}

// CompressSealedBatch is CompressBatch without the zstd frame's content
// checksum, for a batch whose bytes something stronger already guards
// wherever they are: an agent's segments are sealed with AES-GCM in its
// queue and sent over TLS, whose tags catch any change a checksum would.
// DecodeBatch reads its output as it reads CompressBatch's: the same frame
// but for the checksum flag and its 4 bytes.
func CompressSealedBatch(dst, plain []byte) []byte { return zencSealed.EncodeAll(plain, dst) }

// DecodeBatch decompresses and decodes a wire batch and checks its envelope.
// Every error wraps ErrBadBatch. Individual events are not validated here:
// that is the aggregator's job, event by event.
func DecodeBatch(wire []byte) (*Batch, error) {
	b := new(Batch)
	if _, err := decodeBatchInto(b, wire, false); err != nil {
		return nil, err
	}
	return b, nil
}

// DecodeBatchInto is DecodeBatch into b, overwritten whole, reusing the
// array of b.Events when it has room: a caller that decodes batch after
// batch (the aggregator's ingest) keeps a few Batches instead of
// allocating each batch's events afresh. The events decoded last must no
// longer be in use. As EventDecoder's, the batch's events whose
// parameter maps are written alike share one map: they are to be read,
// not changed (DecodeBatch gives each event maps of its own).
func DecodeBatchInto(b *Batch, wire []byte) error {
	*b = Batch{Events: b.Events[:0]}
	if _, err := decodeBatchInto(b, wire, true); err != nil {
		return err
	}
	return nil
}

// EventDecoder is DecodeBatch for a caller that wants only the events of
// many batches in a row (a derivation's staged batches), gathered in one
// slice: each batch's events are decoded in place after the ones before,
// with no copy; their decompressed bytes reuse one buffer, and equal
// strings of all its batches are one string (up to a bound), which costs
// less memory and makes strings of different batches compare by pointer.
// Events whose parameter maps (Params, NumParams, UserProps) are written
// alike share one map: the events are to be read, not changed.
// Not safe for concurrent use; the zero value is ready. Release gives its
// buffer and interned strings to later decoders.
type EventDecoder struct {
	plain  []byte
	intern map[string]string
	maps   *sharedMaps // this decoder's alone, until Release
}

// Append appends the events of the wire batch to dst and returns the
// extended slice. On error dst is returned unchanged in length.
func (d *EventDecoder) Append(dst []Event, wire []byte) ([]Event, error) {
	if d.intern == nil {
		// A pooled decoder's buffer and strings (those of batches
		// decoded before), Released to the pool again.
		*d = *decoders.Get().(*EventDecoder)
		d.maps = newSharedMaps()
	}
	b := Batch{Events: dst}
	n, err := d.decodeInto(&b, wire, d.maps)
	if err != nil {
		return dst, err
	}
	if n < 0 { // msgpack decoded it into b.Events alone
		return append(dst, b.Events...), nil
	}
	return b.Events, nil
}

// Release gives d's buffer and interned strings to the decoders that come
// after it (DecodeBatch's, other EventDecoders'), so they take the strings
// d's batches had without allocating them again. The events d decoded
// stay intact; d is as new afterwards.
func (d *EventDecoder) Release() {
	if d.intern == nil {
		return
	}
	p := &EventDecoder{plain: d.plain, intern: d.intern}
	*d = EventDecoder{}
	p.release()
}

// decodeBatchInto decodes wire into b, appending its events to b.Events,
// and checks the envelope. It returns the events' offset in b.Events, or
// -1 when the events replaced b.Events (the msgpack path). With share,
// events of the batch share their maps (sharedMaps), else each has its own.
func decodeBatchInto(b *Batch, wire []byte, share bool) (int, error) {
	d := decoders.Get().(*EventDecoder)
	defer d.release()
	if !share {
		return d.decodeInto(b, wire, nil)
	}
	if d.maps == nil {
		d.maps = newSharedMaps()
	}
	return d.decodeInto(b, wire, d.maps)
}

// decodeInto is decodeBatchInto with d's buffer and interned strings
// (d.intern not nil), the events sharing the maps in maps (nil: none).
// The decoded batch keeps no bytes of the buffer.
func (d *EventDecoder) decodeInto(b *Batch, wire []byte, maps *sharedMaps) (int, error) {
	plain, err := zdec.DecodeAll(wire, d.plainFor(wire))
	if err != nil {
		return 0, fmt.Errorf("%w: zstd: %v", ErrBadBatch, err)
	}
	if len(plain) > MaxDecodedBytes {
		return 0, fmt.Errorf("%w: %d bytes decompressed, limit %d", ErrBadBatch, len(plain), MaxDecodedBytes)
	}
	if len(plain) <= maxReusedPlain {
		d.plain = plain
	}
	dst := b.Events
	off := len(dst)
	if decodeBatchFast(plain, b, d.intern, maps) != nil {
		// Forms the plain reader does not take, and errors: msgpack says.
		*b = Batch{}
		if err := msgpack.Unmarshal(plain, b); err != nil {
			if v, ok := leadingVersion(plain); ok && v > Version {
				return 0, newerVersion(v)
			}
			return 0, fmt.Errorf("%w: msgpack: %v", ErrBadBatch, err)
		}
		off = -1
	}
	own := *b
	if off >= 0 {
		own.Events = b.Events[off:]
	}
	if err := own.check(); err != nil {
		return 0, err
	}
	return off, nil
}

// plainFor returns d's buffer, emptied, for the decompressed form of
// wire: a new one when the size its frame states (the encoder states it)
// is past the buffer's room, with a quarter more room than that up to
// maxReusedPlain. Left to itself zstd would allocate the exact size, and
// again for each batch a little larger than every one before, as an
// agent's batches of a few thousand events of varied sizes are.
func (d *EventDecoder) plainFor(wire []byte) []byte {
	var h zstd.Header
	if h.Decode(wire) != nil || !h.HasFCS || h.FrameContentSize > maxReusedPlain || h.FrameContentSize <= uint64(cap(d.plain)) {
		return d.plain[:0]
	}
	size := int(h.FrameContentSize)
	return make([]byte, 0, min(size+size/4, maxReusedPlain))
}

// decoders holds EventDecoders for DecodeBatch and DecodeBatchInto (an
// aggregator decodes a batch per batch received): a decoder's buffer
// serves the next batch's decompressed MessagePack (decoding copies every
// string out of it), and its interned strings the next batch's strings,
// so the values batches share (hosts, names, pages, titles, referrers …)
// are neither allocated nor entered in a map again, batch after batch.
var decoders = sync.Pool{New: func() any { return &EventDecoder{intern: make(map[string]string, 256)} }}

// release returns d to decoders. Interned strings stay up to maxInterned;
// a full set is emptied, so strings in use now replace those of earlier
// traffic.
func (d *EventDecoder) release() {
	if cap(d.plain) > maxReusedPlain {
		d.plain = nil
	}
	if len(d.intern) >= maxInterned {
		clear(d.intern)
	}
	if d.maps != nil {
		// The next batch's events share nothing with this one's.
		clear(d.maps.str)
		clear(d.maps.num)
	}
	decoders.Put(d)
}

// NewerVersionError is the error of a batch of a newer protocol version
// than this build's (Version): errors.Is finds ErrBadBatch and
// ErrNewerVersion in it.
type NewerVersionError struct {
	// Version is the batch's.
	Version uint8
}

func (e *NewerVersionError) Error() string {
	return fmt.Sprintf("%v: %v: version %d, this build speaks %d", ErrBadBatch, ErrNewerVersion, e.Version, Version)
}

// Is makes errors.Is find ErrBadBatch and ErrNewerVersion.
func (e *NewerVersionError) Is(target error) bool {
	return target == ErrBadBatch || target == ErrNewerVersion
}

// NewerVersion returns the protocol version of the batch whose error err
// is, or wraps, when that version is newer than this build's.
func NewerVersion(err error) (uint8, bool) {
	var nv *NewerVersionError
	if errors.As(err, &nv) {
		return nv.Version, true
	}
	return 0, false
}

// newerVersion is the error of a batch of version v, newer than Version.
func newerVersion(v uint8) error {
	return &NewerVersionError{Version: v}
}

// leadingVersion reads the "ver" a batch's MessagePack begins with
// (AppendBatchHead): a map whose first key is "ver", its value an
// unsigned integer below 256.
func leadingVersion(plain []byte) (uint8, bool) {
	switch {
	case len(plain) > 0 && plain[0]&0xf0 == 0x80: // fixmap
		plain = plain[1:]
	case len(plain) > 2 && plain[0] == 0xde: // map 16
		plain = plain[3:]
	case len(plain) > 4 && plain[0] == 0xdf: // map 32
		plain = plain[5:]
	default:
		return 0, false
	}
	if len(plain) < 5 || string(plain[:4]) != "\xa3ver" { // fixstr "ver"
		return 0, false
	}
	switch v := plain[4]; {
	case v < 0x80: // positive fixint
		return v, true
	case v == 0xcc && len(plain) > 5: // uint 8
		return plain[5], true
	}
	return 0, false
}

// check validates the envelope of a decoded batch.
func (b *Batch) check() error {
	switch {
	case b.Version > Version:
		return newerVersion(b.Version)
	case b.Version != Version:
		return fmt.Errorf("%w: version %d, this build speaks %d", ErrBadBatch, b.Version, Version)
	case b.AgentID == "" || len(b.AgentID) > MaxAgentIDLen:
		return fmt.Errorf("%w: agent id must be 1..%d bytes, got %d", ErrBadBatch, MaxAgentIDLen, len(b.AgentID))
	case b.Seq == 0:
		return fmt.Errorf("%w: seq must be > 0", ErrBadBatch)
	case len(b.Events) > MaxBatchEvents:
		return fmt.Errorf("%w: %d events, limit %d", ErrBadBatch, len(b.Events), MaxBatchEvents)
	}
	return nil
}
