package command

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	datapb "google.golang.org/genproto/googleapis/analytics/data/v1beta"
)

// reportCells is a report as text cells: the header, the rows and, when
// the response has totals, one totals row per date range.
func reportCells(resp *datapb.RunReportResponse, forTable bool) (header []string, rows, totals [][]string) {
	for _, d := range resp.DimensionHeaders {
		header = append(header, d.Name)
	}
	for _, m := range resp.MetricHeaders {
		header = append(header, m.Name)
	}
	row := func(r *datapb.Row) []string {
		out := make([]string, 0, len(header))
		for _, v := range r.DimensionValues {
			out = append(out, v.GetValue())
		}
		for i, v := range r.MetricValues {
			s := v.GetValue()
			if forTable && i < len(resp.MetricHeaders) && resp.MetricHeaders[i].Type != datapb.MetricType_TYPE_INTEGER {
				// Ratios and seconds in two decimals; CSV and JSON keep
				// the exact value.
				if f, err := strconv.ParseFloat(s, 64); err == nil {
					s = strconv.FormatFloat(f, 'f', 2, 64)
				}
			}
			out = append(out, s)
		}
		return out
	}
	for _, r := range resp.Rows {
		rows = append(rows, row(r))
	}
	for _, r := range resp.Totals {
		t := row(r)
		if forTable {
			// The dimensions say RESERVED_TOTAL; the table says Total,
			// keeping a dateRange value when there are several ranges.
			for i := range resp.DimensionHeaders {
				switch {
				case i == 0:
					t[i] = "Total"
				case t[i] == "RESERVED_TOTAL":
					t[i] = ""
				}
			}
		}
		totals = append(totals, t)
	}
	return header, rows, totals
}

// writeReportTable prints resp as an aligned table: dimensions left-aligned,
// metrics right-aligned, a rule above the totals, and a line saying how many
// rows matched when the page holds fewer.
func writeReportTable(w io.Writer, resp *datapb.RunReportResponse) error {
	header, rows, totals := reportCells(resp, true)
	nd := len(resp.DimensionHeaders)
	widths := make([]int, len(header))
	for _, r := range append(append([][]string{header}, rows...), totals...) {
		for i, c := range r {
			if i < len(widths) {
				widths[i] = max(widths[i], utf8.RuneCountInString(c))
			}
		}
	}
	var b strings.Builder
	line := func(r []string) {
		for i, c := range r {
			if i >= len(widths) {
				break
			}
			if i > 0 {
				b.WriteString("  ")
			}
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			if i < nd {
				b.WriteString(c)
				if i < len(r)-1 {
					b.WriteString(pad)
				}
			} else {
				b.WriteString(pad + c)
			}
		}
		b.WriteString("\n")
	}
	line(header)
	for _, r := range rows {
		line(r)
	}
	if len(totals) > 0 {
		total := 0
		for _, wd := range widths {
			total += wd
		}
		b.WriteString(strings.Repeat("-", total+2*(len(widths)-1)) + "\n")
		for _, r := range totals {
			line(r)
		}
	}
	switch {
	case len(rows) == 0:
		b.WriteString("(no rows)\n")
	case int(resp.RowCount) > len(rows):
		fmt.Fprintf(&b, "(%d of %d rows; see --limit and --offset)\n", len(rows), resp.RowCount)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeReportCSV prints resp as CSV with exact values.
func writeReportCSV(w io.Writer, resp *datapb.RunReportResponse) error {
	header, rows, totals := reportCells(resp, false)
	cw := csv.NewWriter(w)
	if err := cw.Write(header); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	if err := cw.WriteAll(append(rows, totals...)); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	return nil
}
