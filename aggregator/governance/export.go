package governance

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/avila-analytics/avila/storage/postgres"
)

// Export is everything stored of one subject on one site: what an access
// or portability request answers.
type Export struct {
	Property    uint32                    `json:"property"`
	Identity    Identity                  `json:"identity"`
	Key         string                    `json:"key"` // the pseudonymous key the rows are stored under (hex)
	GeneratedAt time.Time                 `json:"generated_at"`
	Note        string                    `json:"note"`
	Events      []postgres.SubjectEvent   `json:"events"`
	Sessions    []postgres.SubjectSession `json:"sessions"`
	// Commerce holds the amounts of the subject's ecommerce events
	// (purchases, refunds …), Items their items.
	Commerce []postgres.SubjectCommerce `json:"commerce"`
	Items    []postgres.SubjectItem     `json:"items"`
	// Quarantined holds the subject's events in staged rows no derivation
	// could take (`avila staged list`): held, in no report, with their
	// texts as staged.
	Quarantined []postgres.SubjectEvent `json:"quarantined_events"`
}

// WriteJSON writes the export as one indented JSON document.
func (e *Export) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(e); err != nil {
		return fmt.Errorf("governance: write export json: %w", err)
	}
	return nil
}

// csvFixed are the CSV columns before the dimensions.
var csvFixed = []string{"record", "time", "end", "session_id", "event_name", "events", "page_views", "key_events",
	"engagement_time_msec", "flags"}

// csvCommerce are the CSV columns of commerce and item records, after the
// parameters.
var csvCommerce = []string{"value", "tax", "shipping", "transaction_id", "currency", "first_purchase", "quantity"}

// WriteCSV writes the export as one CSV table: a row per event (record
// "event"; "quarantined_event" for one held in quarantine), per session ("session"), per ecommerce row ("commerce") and
// per item ("item"), a column per dimension found (item dimensions
// included), parameters and user properties as JSON objects, then the
// amounts of commerce and item rows.
func (e *Export) WriteCSV(w io.Writer) error {
	dimSet := map[string]bool{}
	for _, ev := range slices.Concat(e.Events, e.Quarantined) {
		for k := range ev.Dims {
			dimSet[k] = true
		}
	}
	for _, s := range e.Sessions {
		for k := range s.Dims {
			dimSet[k] = true
		}
	}
	for _, it := range e.Items {
		for k := range it.Dims {
			dimSet[k] = true
		}
	}
	dims := slices.Sorted(maps.Keys(dimSet))
	cw := csv.NewWriter(w)
	header := append(append(append(slices.Clone(csvFixed), dims...), "params", "num_params", "user_properties"), csvCommerce...)
	money := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	if err := cw.Write(header); err != nil {
		return fmt.Errorf("governance: write export csv: %w", err)
	}
	jsonCell := func(v any, empty bool) string {
		if empty {
			return ""
		}
		b, _ := json.Marshal(v) // maps of strings and floats always encode
		return string(b)
	}
	for i, ev := range slices.Concat(e.Events, e.Quarantined) {
		record := "event"
		if i >= len(e.Events) {
			record = "quarantined_event" // in no report
		}
		rec := []string{record, ev.Time.Format(time.RFC3339Nano), "", strconv.FormatInt(ev.SessionID, 10), ev.Name, "", "", "",
			strconv.FormatInt(int64(ev.EngagementMs), 10), strconv.Itoa(int(ev.Flags))}
		for _, d := range dims {
			rec = append(rec, ev.Dims[d])
		}
		rec = append(rec, jsonCell(ev.Params, len(ev.Params) == 0), jsonCell(ev.NumParams, len(ev.NumParams) == 0),
			jsonCell(ev.UserProps, len(ev.UserProps) == 0))
		rec = append(rec, make([]string, len(csvCommerce))...)
		if err := cw.Write(rec); err != nil {
			return fmt.Errorf("governance: write export csv: %w", err)
		}
	}
	for _, s := range e.Sessions {
		rec := []string{"session", s.Start.Format(time.RFC3339Nano), s.Last.Format(time.RFC3339Nano), strconv.FormatInt(s.SessionID, 10), "",
			strconv.Itoa(int(s.Events)), strconv.Itoa(int(s.PageViews)), strconv.Itoa(int(s.KeyEvents)),
			strconv.FormatInt(s.EngagementMs, 10), strconv.Itoa(int(s.Flags))}
		for _, d := range dims {
			rec = append(rec, s.Dims[d])
		}
		rec = append(rec, "", "", "")
		rec = append(rec, make([]string, len(csvCommerce))...)
		if err := cw.Write(rec); err != nil {
			return fmt.Errorf("governance: write export csv: %w", err)
		}
	}
	for _, c := range e.Commerce {
		rec := []string{"commerce", c.Time.Format(time.RFC3339Nano), "", "", c.Name, "", "", "", "", ""}
		rec = append(rec, make([]string, len(dims)+3)...)
		rec = append(rec, money(c.Revenue), money(c.Tax), money(c.Shipping), c.TransactionID, c.Currency, strconv.FormatBool(c.FirstPurchase), "")
		if err := cw.Write(rec); err != nil {
			return fmt.Errorf("governance: write export csv: %w", err)
		}
	}
	for _, it := range e.Items {
		rec := []string{"item", it.Time.Format(time.RFC3339Nano), "", strconv.FormatInt(it.SessionID, 10), it.Name, "", "", "", "", ""}
		for _, d := range dims {
			rec = append(rec, it.Dims[d])
		}
		rec = append(rec, "", "", "", money(it.Revenue), "", "", "", "", "", strconv.Itoa(int(it.Quantity)))
		if err := cw.Write(rec); err != nil {
			return fmt.Errorf("governance: write export csv: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("governance: write export csv: %w", err)
	}
	return nil
}
