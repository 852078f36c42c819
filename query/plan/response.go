package plan

// RunReportResponse is a report as the engines answer it: GA4's
// RunReportResponse in the field names of its JSON, converted to Google's
// message at the edge (convert.go); its JSON is what the result cache
// keeps. Values are strings, as GA4 sends them.
type RunReportResponse struct {
	DimensionHeaders []DimensionHeader `json:"dimensionHeaders,omitempty"`
	MetricHeaders    []MetricHeader    `json:"metricHeaders,omitempty"`
	Rows             []Row             `json:"rows,omitempty"`
	Totals           []Row             `json:"totals,omitempty"`
	Maximums         []Row             `json:"maximums,omitempty"`
	Minimums         []Row             `json:"minimums,omitempty"`
	RowCount         int64             `json:"rowCount"`
	Metadata         ResponseMetadata  `json:"metadata"`
	PropertyQuota    *PropertyQuota    `json:"propertyQuota,omitempty"`
	Kind             string            `json:"kind"`
}

// DimensionHeader names a dimension column.
type DimensionHeader struct {
	Name string `json:"name"`
}

// MetricHeader names a metric column and gives its type (TYPE_INTEGER, …).
type MetricHeader struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// Row is one report row: dimension values then metric values, in header order.
type Row struct {
	DimensionValues []Value `json:"dimensionValues,omitempty"`
	MetricValues    []Value `json:"metricValues,omitempty"`
}

// Value is one dimension or metric value.
type Value struct {
	Value string `json:"value"`
}

// ResponseMetadata says how values were reported.
type ResponseMetadata struct {
	CurrencyCode string `json:"currencyCode"`
	TimeZone     string `json:"timeZone"`
}

// ReportKind is the kind GA4 gives a runReport response.
const ReportKind = "analyticsData#runReport"

// Dimension values GA4 gives summary rows in place of dimension values.
const (
	ReservedTotal = "RESERVED_TOTAL"
	ReservedMax   = "RESERVED_MAX"
	ReservedMin   = "RESERVED_MIN"
)
