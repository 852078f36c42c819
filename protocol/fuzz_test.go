package protocol

import (
	"bytes"
	"testing"
)

// FuzzDecodeBatch feeds arbitrary bytes to the batch decoder: it must never
// panic, and what it accepts must encode again to an equal batch.
func FuzzDecodeBatch(f *testing.F) {
	good, _ := EncodeBatch(&Batch{Version: Version, AgentID: "agent-1", Seq: 1, Events: sampleEvents()})
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte{})
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd}) // zstd magic only
	f.Fuzz(func(t *testing.T, wire []byte) {
		b, err := DecodeBatch(wire)
		if err != nil {
			return
		}
		again, err := EncodeBatch(b)
		if err != nil {
			t.Fatalf("re-encode accepted batch: %v", err)
		}
		if _, err := DecodeBatch(again); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
	})
}

// FuzzReadFrame checks the framing reader on arbitrary streams.
func FuzzReadFrame(f *testing.F) {
	var buf bytes.Buffer
	_ = WriteFrame(&buf, FrameBatch, []byte("payload"))
	f.Add(buf.Bytes())
	f.Add([]byte{9, 0, 0, 0, 1, 0})
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		typ, p, err := ReadFrame(bytes.NewReader(in), 1<<16)
		if err != nil {
			return
		}
		if len(p) > 1<<16 || typ < FrameBatch || typ > FrameConfig {
			t.Fatalf("accepted frame type %d with %d bytes", typ, len(p))
		}
	})
}
