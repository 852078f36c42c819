package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
)

// wireBytes measures what the agent→aggregator link carries per event:
// the end-to-end phase's stored rows are turned back into protocol.Events
// (every field the events table keeps) and cut into batches of the sizes
// the agent really shipped (agent_batches after baseSeq), then encoded
// with the wire codec (MessagePack + zstd).
func (r *run) wireBytes(ctx context.Context, rows []storedRow, baseSeq int64) error {
	sizes, err := r.batchSizes(ctx, baseSeq)
	if err != nil {
		return err
	}
	dims, err := r.dimValues(ctx)
	if err != nil {
		return err
	}
	events := make([]protocol.Event, len(rows))
	for i, row := range rows {
		if events[i], err = eventFromRow(&row, dims); err != nil {
			return err
		}
	}
	total, n := 0, 0
	for i, size := range sizes {
		if n+size > len(events) {
			break // batches of events refused as dead letters have no rows here
		}
		b := protocol.Batch{Version: protocol.Version, AgentID: r.st.agentID, Seq: uint64(baseSeq) + uint64(i) + 1,
			Created: time.Now().UnixMicro(), Events: events[n : n+size]}
		wire, err := protocol.EncodeBatch(&b)
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		total += len(wire)
		n += size
	}
	if n == 0 {
		return errors.New("bench: wire bytes: no shipped batch matched the stored rows")
	}
	r.set("wire_bytes_per_event", float64(total)/float64(n))
	r.set("wire_events_per_batch", float64(n)/float64(len(sizes)))
	if raw, ok := r.res.Get("raw_request_bytes_per_event"); ok {
		r.set("wire_ratio_vs_raw", ratio(float64(total)/float64(n), raw))
	}
	return nil
}

// batchSizes lists the event counts of the batches shipped after baseSeq.
func (r *run) batchSizes(ctx context.Context, baseSeq int64) ([]int, error) {
	rows, err := r.st.db.Query(ctx,
		"SELECT events FROM agent_batches WHERE seq > $1 AND events > 0 ORDER BY seq", baseSeq)
	if err != nil {
		return nil, fmt.Errorf("bench: batch sizes: %w", err)
	}
	sizes, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (int, error) {
		var n int32
		err := row.Scan(&n)
		return int(n), err
	})
	if err != nil {
		return nil, fmt.Errorf("bench: batch sizes: %w", err)
	}
	return sizes, nil
}

// dimValues loads the whole dictionary: id → value.
func (r *run) dimValues(ctx context.Context) (map[int32]string, error) {
	rows, err := r.st.db.Query(ctx, "SELECT id, value FROM dims")
	if err != nil {
		return nil, fmt.Errorf("bench: read dims: %w", err)
	}
	defer rows.Close()
	m := make(map[int32]string)
	for rows.Next() {
		var id int32
		var v string
		if err := rows.Scan(&id, &v); err != nil {
			return nil, fmt.Errorf("bench: read dims: %w", err)
		}
		m[id] = v
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("bench: read dims: %w", err)
	}
	return m, nil
}

// eventFromRow rebuilds the event a row came from.
func eventFromRow(row *storedRow, dims map[int32]string) (protocol.Event, error) {
	e := protocol.Event{Site: uint32(row.site), TimeMicros: row.ts.UnixMicro(), Visitor: uint64(row.visitor),
		SessionID: row.session, EngageMs: int64(row.engage), Flags: uint8(row.flags)}
	if len(row.params) > 0 {
		p, err := postgres.DecodeParams(row.params)
		if err != nil {
			return e, fmt.Errorf("bench: %w", err)
		}
		e.Params, e.NumParams, e.UserProps = p.Params, p.NumParams, p.UserProps
	}
	// In dims kind order, as the row's dims array.
	fields := [numKinds]*string{&e.Name, &e.Path, &e.Host, &e.Title, &e.Referrer,
		&e.Language, &e.Screen, &e.Country, &e.Region, &e.City, &e.Browser, &e.OS, &e.Device}
	for k, f := range fields {
		id := row.dims[k]
		if id == 0 {
			continue // absent
		}
		v, ok := dims[id]
		if !ok {
			return e, fmt.Errorf("bench: dims kind %d id %d is not in the dims table", k+1, id)
		}
		*f = v
	}
	return e, nil
}
