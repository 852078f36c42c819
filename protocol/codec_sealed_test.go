package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/zstd"
)

// CompressSealedBatch writes CompressBatch's frame without its content
// checksum and nothing else changed, for a batch of one block and for one
// of several (a segment of thousands of events), and both decode to the
// same batch with DecodeBatch and an EventDecoder: an aggregator reads an
// agent's segments alike whether its version wrote them with the checksum
// or without. A sealed frame cut short is still refused.
func TestCompressSealedBatch(t *testing.T) {
	large := make([]Event, 0, 3000)
	for i := range cap(large) {
		e := sampleEvents()[i%len(sampleEvents())]
		e.TimeMicros += int64(i) * 40
		e.Path = fmt.Sprintf("/page/%d", i*7919%2000)
		large = append(large, e)
	}
	for _, tc := range []struct {
		name   string
		events []Event
	}{
		{"one block", sampleEvents()},
		{"several blocks", large},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plain := AppendBatchHead(nil, "agent-1", 9, 1_764_000_001_000_000, len(tc.events))
			for _, e := range tc.events {
				plain = AppendEvent(plain, &e)
			}
			checked := CompressBatch(nil, plain)
			sealed := CompressSealedBatch(nil, plain)
			var hc, hs zstd.Header
			if err := hc.Decode(checked); err != nil || !hc.HasCheckSum {
				t.Fatalf("CompressBatch's frame: checksum %v, %v; want one", hc.HasCheckSum, err)
			}
			if err := hs.Decode(sealed); err != nil || hs.HasCheckSum {
				t.Fatalf("CompressSealedBatch's frame: checksum %v, %v; want none", hs.HasCheckSum, err)
			}
			if hs.FrameContentSize != uint64(len(plain)) || hs.FrameContentSize != hc.FrameContentSize || hs.WindowSize != hc.WindowSize {
				t.Fatalf("sealed frame states size %d window %d, want %d and %d", hs.FrameContentSize, hs.WindowSize, hc.FrameContentSize, hc.WindowSize)
			}
			// The frame header descriptor follows the 4-byte magic; its
			// bit 2 is the checksum flag, and the checksum the frame's
			// last 4 bytes.
			want := bytes.Clone(checked[:len(checked)-4])
			want[4] &^= 1 << 2
			if !bytes.Equal(sealed, want) {
				t.Fatalf("sealed frame (%d bytes) is not the checked frame (%d bytes) less its checksum", len(sealed), len(checked))
			}
			wantBatch, err := DecodeBatch(checked)
			if err != nil {
				t.Fatal(err)
			}
			gotBatch, err := DecodeBatch(sealed)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(wantBatch, gotBatch); diff != "" {
				t.Fatalf("sealed batch decodes differently (-checked +sealed):\n%s", diff)
			}
			var dec EventDecoder
			got, err := dec.Append(nil, sealed)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(wantBatch.Events, got); diff != "" {
				t.Fatalf("EventDecoder's events of the sealed batch differ (-want +got):\n%s", diff)
			}
			if _, err := DecodeBatch(sealed[:len(sealed)-3]); !errors.Is(err, ErrBadBatch) {
				t.Fatalf("a sealed batch cut short: %v, want ErrBadBatch", err)
			}
		})
	}
}
