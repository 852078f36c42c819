package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// FrameType tags the one message a frame holds. A stream carries exactly one
// request frame from the agent and one response frame from the aggregator.
type FrameType uint8

const (
	FrameBatch         FrameType = 1 // agent → aggregator: compressed Batch
	FrameAck           FrameType = 2 // aggregator → agent: Ack
	FrameConfigRequest FrameType = 3 // agent → aggregator: ConfigRequest
	FrameConfig        FrameType = 4 // aggregator → agent: Config
)

// MaxFrameSize bounds one frame's payload (the compressed batch on the wire).
const MaxFrameSize = 32 << 20

// frameHeaderLen is 1 byte type + 4 bytes big-endian payload length.
const frameHeaderLen = 5

// Sentinel framing errors; a peer sending them gets its stream refused.
var (
	ErrFrameTooLarge = errors.New("frame too large")
	ErrUnknownFrame  = errors.New("unknown frame type")
)

func (t FrameType) String() string {
	switch t {
	case FrameBatch:
		return "batch"
	case FrameAck:
		return "ack"
	case FrameConfigRequest:
		return "config-request"
	case FrameConfig:
		return "config"
	}
	return fmt.Sprintf("frame(%d)", uint8(t))
}

// WriteFrame writes one frame.
func WriteFrame(w io.Writer, t FrameType, payload []byte) error {
	if len(payload) > MaxFrameSize {
		return fmt.Errorf("protocol: write %s frame: %w (%d bytes, limit %d)", t, ErrFrameTooLarge, len(payload), MaxFrameSize)
	}
	var hdr [frameHeaderLen]byte
	hdr[0] = byte(t)
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(payload)))
	if _, err := w.Write(hdr[:]); err != nil {
		return fmt.Errorf("protocol: write %s frame header: %w", t, err)
	}
	if _, err := w.Write(payload); err != nil {
		return fmt.Errorf("protocol: write %s frame: %w", t, err)
	}
	return nil
}

// ReadFrame reads one frame whose payload is at most max bytes.
func ReadFrame(r io.Reader, max int) (FrameType, []byte, error) {
	var hdr [frameHeaderLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, fmt.Errorf("protocol: read frame header: %w", err)
	}
	t := FrameType(hdr[0])
	if t < FrameBatch || t > FrameConfig {
		return t, nil, fmt.Errorf("protocol: read frame: %w %d", ErrUnknownFrame, hdr[0])
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if int64(n) > int64(max) {
		return t, nil, fmt.Errorf("protocol: read %s frame: %w (%d bytes, limit %d)", t, ErrFrameTooLarge, n, max)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return t, nil, fmt.Errorf("protocol: read %s frame of %d bytes: %w", t, n, err)
	}
	return t, payload, nil
}
