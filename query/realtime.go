package query

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/avila-analytics/avila/storage/redis"
)

// RealtimeSource is the realtime state of the last 30 minutes that
// :runRealtimeReport and the realtime WebSocket read. *redis.Realtime
// satisfies it.
type RealtimeSource interface {
	Window(ctx context.Context, site uint32) (redis.Window, error)
	Watch(fn func(site uint32))
}

// RunRealtimeReportRequest mirrors the GA4 Data API v1beta
// RunRealtimeReportRequest JSON.
type RunRealtimeReportRequest struct {
	Property            string              `json:"property,omitempty"`
	Dimensions          []Dimension         `json:"dimensions,omitempty"`
	Metrics             []Metric            `json:"metrics,omitempty"`
	DimensionFilter     *FilterExpression   `json:"dimensionFilter,omitempty"`
	MetricFilter        *FilterExpression   `json:"metricFilter,omitempty"`
	Limit               Int64               `json:"limit,omitempty"`
	MetricAggregations  []MetricAggregation `json:"metricAggregations,omitempty"`
	OrderBys            []OrderBy           `json:"orderBys,omitempty"`
	ReturnPropertyQuota bool                `json:"returnPropertyQuota,omitempty"`
	MinuteRanges        []MinuteRange       `json:"minuteRanges,omitempty"`
}

// MinuteRange is GA4's MinuteRange: the minutes from StartMinutesAgo back
// in time to EndMinutesAgo, both inclusive (default 29 and 0: the last 30
// minutes).
type MinuteRange struct {
	Name            string `json:"name,omitempty"`
	StartMinutesAgo *Int64 `json:"startMinutesAgo,omitempty"` // int32 in GA4; a number or, in proto3 JSON, a string
	EndMinutesAgo   *Int64 `json:"endMinutesAgo,omitempty"`
}

// RunRealtimeReportResponse mirrors GA4's RunRealtimeReportResponse JSON.
type RunRealtimeReportResponse struct {
	DimensionHeaders []DimensionHeader `json:"dimensionHeaders,omitempty"`
	MetricHeaders    []MetricHeader    `json:"metricHeaders,omitempty"`
	Rows             []Row             `json:"rows,omitempty"`
	Totals           []Row             `json:"totals,omitempty"`
	Maximums         []Row             `json:"maximums,omitempty"`
	Minimums         []Row             `json:"minimums,omitempty"`
	RowCount         int64             `json:"rowCount"`
	PropertyQuota    *PropertyQuota    `json:"propertyQuota,omitempty"`
	Kind             string            `json:"kind"`
}

// realtimeKind is the kind GA4 gives a runRealtimeReport response.
const realtimeKind = "analyticsData#runRealtimeReport"

// Realtime request bounds, GA4's.
const (
	maxMinuteRanges = 2
	maxMinutesAgo   = redis.RealtimeWindow - 1
)

// rtDim is a realtime dimension: an index into rtValues.
type rtDim int

const (
	rtMinutesAgo rtDim = iota
	rtCountry
	rtCity
	rtDeviceCategory
	rtEventName
	rtUnifiedScreenName
	rtDimCount
)

// rtMetric is a realtime metric: an index into rtAcc.metrics.
type rtMetric int

const (
	rtActiveUsers rtMetric = iota
	rtEventCount
	rtScreenPageViews
	rtMetricCount
)

// realtimeDims and realtimeMetrics are the realtime allowlists, by API name.
var (
	realtimeDims = map[string]rtDim{
		"minutesAgo": rtMinutesAgo, "country": rtCountry, "city": rtCity, "deviceCategory": rtDeviceCategory,
		"eventName": rtEventName, "unifiedScreenName": rtUnifiedScreenName,
	}
	realtimeMetrics = map[string]rtMetric{
		"activeUsers": rtActiveUsers, "eventCount": rtEventCount, "screenPageViews": rtScreenPageViews,
	}
)

const (
	realtimeDimNames    = "minutesAgo, country, city, deviceCategory, eventName and unifiedScreenName"
	realtimeMetricNames = "activeUsers, eventCount and screenPageViews"
)

// rtPlan is a validated realtime report.
type rtPlan struct {
	dims         []rtDim
	dimNames     []string
	metrics      []rtMetric
	metricNames  []string
	ranges       []rtRange
	dimFilter    *rtFilter
	metricFilter *rtFilter
	order        []orderTerm // idx: 0 = minute range, 1.. = dims; metrics by index
	limit        int64
	totals       bool
	maximums     bool
	minimums     bool
}

// rtRange holds the minutes [end, start] ago.
type rtRange struct {
	start, end int64
	name       string
}

// validateRealtime checks req against the realtime allowlists and GA4's
// rules.
func validateRealtime(req *RunRealtimeReportRequest, id uint32) (*rtPlan, *apiError) {
	if req.Property != "" && req.Property != "properties/"+strconv.FormatUint(uint64(id), 10) {
		return nil, invalidArgument("property %s does not match the property in the URL.", quoteName(req.Property))
	}
	p := &rtPlan{}
	if err := p.addFields(req); err != nil {
		return nil, err
	}
	var err *apiError
	if p.dimFilter, err = compileRealtimeFilter(req.DimensionFilter, "dimensionFilter", false); err != nil {
		return nil, err
	}
	if p.metricFilter, err = compileRealtimeFilter(req.MetricFilter, "metricFilter", true); err != nil {
		return nil, err
	}
	if err := p.addRanges(req.MinuteRanges); err != nil {
		return nil, err
	}
	if p.limit, err = rowLimit(req.Limit); err != nil {
		return nil, err
	}
	if err := p.addOrder(req.OrderBys); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *rtPlan) addFields(req *RunRealtimeReportRequest) *apiError {
	if err := checkFieldCounts(len(req.Dimensions), len(req.Metrics)); err != nil {
		return err
	}
	seen := map[string]bool{}
	for i, d := range req.Dimensions {
		def, ok := realtimeDims[d.Name]
		switch {
		case len(d.DimensionExpression) > 0 && string(d.DimensionExpression) != "null":
			return invalidArgument("dimensions[%d]: dimensionExpression (dimension %s) is not supported by this server.", i, quoteName(d.Name))
		case !ok:
			return invalidArgument("dimensions[%d]: %s", i, notValid(d.Name, "realtime dimension", "realtime reports take "+realtimeDimNames))
		case seen[d.Name]:
			return invalidArgument("Duplicate dimension name %s.", quoteName(d.Name))
		}
		seen[d.Name] = true
		p.dims, p.dimNames = append(p.dims, def), append(p.dimNames, d.Name)
	}
	for i, m := range req.Metrics {
		def, ok := realtimeMetrics[m.Name]
		switch {
		case m.Expression != "" || m.Invisible:
			return invalidArgument("metrics[%d]: metric expressions and invisible metrics (metric %s) are not supported by this server.", i, quoteName(m.Name))
		case !ok:
			return invalidArgument("metrics[%d]: %s", i, notValid(m.Name, "realtime metric", "realtime reports take "+realtimeMetricNames))
		case seen[m.Name]:
			return invalidArgument("Duplicate metric name %s.", quoteName(m.Name))
		}
		seen[m.Name] = true
		p.metrics, p.metricNames = append(p.metrics, def), append(p.metricNames, m.Name)
	}
	var err *apiError
	p.totals, p.maximums, p.minimums, err = aggregations(req.MetricAggregations)
	return err
}

func (p *rtPlan) addRanges(ranges []MinuteRange) *apiError {
	if len(ranges) == 0 {
		ranges = []MinuteRange{{}}
	}
	if len(ranges) > maxMinuteRanges {
		return invalidArgument("Requested %d minute ranges; the limit is %d.", len(ranges), maxMinuteRanges)
	}
	for i, r := range ranges {
		start, end := int64(maxMinutesAgo), int64(0)
		if r.StartMinutesAgo != nil {
			start = int64(*r.StartMinutesAgo)
		}
		if r.EndMinutesAgo != nil {
			end = int64(*r.EndMinutesAgo)
		}
		switch {
		case start < 0 || start > maxMinutesAgo:
			return invalidArgument("minuteRanges[%d].startMinutesAgo: %d is outside 0 to %d.", i, start, maxMinutesAgo)
		case end < 0 || end > maxMinutesAgo:
			return invalidArgument("minuteRanges[%d].endMinutesAgo: %d is outside 0 to %d.", i, end, maxMinutesAgo)
		case start < end:
			return invalidArgument("minuteRanges[%d]: startMinutesAgo %d is after endMinutesAgo %d (start counts further back).", i, start, end)
		}
		name, err := rangeName("minuteRanges", i, r.Name)
		if err != nil {
			return err
		}
		p.ranges = append(p.ranges, rtRange{start: start, end: end, name: name})
	}
	return nil
}

func (p *rtPlan) addOrder(orderBys []OrderBy) *apiError {
	for i, o := range orderBys {
		t := orderTerm{desc: o.Desc, idx: -1}
		switch {
		case len(o.Pivot) > 0 && string(o.Pivot) != "null":
			return invalidArgument("orderBys[%d]: pivot ordering is not supported by this server.", i)
		case o.Metric != nil && o.Dimension != nil, o.Metric == nil && o.Dimension == nil:
			return invalidArgument("orderBys[%d]: set exactly one of metric or dimension.", i)
		case o.Metric != nil:
			t.metric = true
			for j, n := range p.metricNames {
				if n == o.Metric.MetricName {
					t.idx = j
				}
			}
			if t.idx < 0 {
				return invalidArgument("orderBys[%d]: metric %s is not in the request's metrics.", i, quoteName(o.Metric.MetricName))
			}
		default:
			name := o.Dimension.DimensionName
			if name == dateRangeDim && len(p.ranges) > 1 {
				t.idx = 0
			}
			for j, n := range p.dimNames {
				if n == name {
					t.idx = j + 1
				}
			}
			if t.idx < 0 {
				return invalidArgument("orderBys[%d]: dimension %s is not in the request's dimensions.", i, quoteName(name))
			}
			var err *apiError
			if t.fold, t.numeric, err = dimensionOrderType(i, o.Dimension.OrderType); err != nil {
				return err
			}
		}
		p.order = append(p.order, t)
	}
	return nil
}

// realtimeValues are a cell's dimension values as reports show them.
func realtimeValues(c *redis.Cell, minutesAgo int64) [rtDimCount]string {
	var v [rtDimCount]string
	v[rtMinutesAgo] = fmt.Sprintf("%02d", minutesAgo)
	v[rtCountry] = countryName(c.Country)
	v[rtCity] = rtNotSet(c.City)
	v[rtDeviceCategory] = rtNotSet(c.Device)
	v[rtEventName] = rtNotSet(c.EventName)
	v[rtUnifiedScreenName] = rtNotSet(c.Screen)
	return v
}

// countryName is GA4's country: the English name of the ISO code, the code
// as sent when it has none.
func countryName(code string) string {
	if name, ok := countryNames[strings.ToUpper(code)]; ok {
		return name
	}
	return rtNotSet(code)
}

func rtNotSet(s string) string {
	if s == "" {
		return notSet
	}
	return s
}
