package protocol

import (
	"errors"
	"fmt"

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

// zstd encoders and decoders are safe for concurrent EncodeAll/DecodeAll and
// costly to create, so one of each serves the process.
//
// The encoder's window is 1 MiB rather than the default 8 MiB: an agent's
// batch of 5000 events (its default segment size) is about that size before
// compression, so matches are found as before, and the encoder keeps about 4 MB of tables
// and history alive instead of 18 MB. In the agent, whose heap is held
// under a soft limit (24 MiB), those 14 MB made the collector run every few
// milliseconds under load. Decoders accept any window up to their limit.
var (
	zenc, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1),
		zstd.WithWindowSize(1<<20))
	zdec, _ = zstd.NewReader(nil, zstd.WithDecoderMaxMemory(MaxDecodedBytes), zstd.WithDecoderConcurrency(0))
)

// rawBatch is Batch with events kept as already-encoded MessagePack, so an
// agent can seal a segment from queued events without decoding them.
type rawBatch struct {
	Version uint8                `msgpack:"ver"`
	AgentID string               `msgpack:"a"`
	Seq     uint64               `msgpack:"q"`
	Created int64                `msgpack:"c"`
	Events  []msgpack.RawMessage `msgpack:"e"`
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
	return zenc.EncodeAll(plain, make([]byte, 0, len(plain)/3)), nil
}

// EncodeRawBatch builds the compressed wire form of a batch from events
// already encoded with EncodeEvent.
func EncodeRawBatch(agentID string, seq uint64, createdMicros int64, events [][]byte) ([]byte, error) {
	rb := rawBatch{Version: Version, AgentID: agentID, Seq: seq, Created: createdMicros, Events: make([]msgpack.RawMessage, len(events))}
	for i, e := range events {
		rb.Events[i] = e
	}
	plain, err := msgpack.Marshal(&rb)
	if err != nil {
		return nil, fmt.Errorf("protocol: encode batch %s/%d: %w", agentID, seq, err)
	}
	return zenc.EncodeAll(plain, make([]byte, 0, len(plain)/3)), nil
}

// DecodeBatch decompresses and decodes a wire batch and checks its envelope.
// Every error wraps ErrBadBatch. Individual events are not validated here:
// that is the aggregator's job, event by event.
func DecodeBatch(wire []byte) (*Batch, error) {
	plain, err := zdec.DecodeAll(wire, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: zstd: %v", ErrBadBatch, err)
	}
	if len(plain) > MaxDecodedBytes {
		return nil, fmt.Errorf("%w: %d bytes decompressed, limit %d", ErrBadBatch, len(plain), MaxDecodedBytes)
	}
	var b Batch
	if err := msgpack.Unmarshal(plain, &b); err != nil {
		return nil, fmt.Errorf("%w: msgpack: %v", ErrBadBatch, err)
	}
	if err := b.check(); err != nil {
		return nil, err
	}
	return &b, nil
}

// check validates the envelope of a decoded batch.
func (b *Batch) check() error {
	switch {
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
