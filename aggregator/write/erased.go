package write

import (
	"context"
	"fmt"

	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
)

// dropErased removes from events those of subjects erased recently (the
// site's tombstones: visitor or user keys), so events an agent still held,
// or dated back, of an erased subject are never stored. events is reused.
func dropErased(ctx context.Context, d *postgres.DeriveTx, events []protocol.Event, m *Metrics) ([]protocol.Event, error) {
	tomb, err := d.Tombstones(ctx)
	if err != nil {
		return nil, fmt.Errorf("write: %w", err)
	}
	if len(tomb) == 0 {
		return events, nil
	}
	kept := events[:0]
	for _, e := range events {
		if tomb.Holds(&e) {
			continue
		}
		kept = append(kept, e)
	}
	if dropped := len(events) - len(kept); dropped > 0 && m != nil {
		m.erased.Add(float64(dropped))
	}
	return kept, nil
}
