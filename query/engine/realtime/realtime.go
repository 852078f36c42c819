package realtime

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/avila-analytics/avila/query/plan"
	"github.com/avila-analytics/avila/storage/redis"
)

// Source is the realtime state of the last 30 minutes that
// :runRealtimeReport and the realtime WebSocket read. *redis.Realtime
// satisfies it.
type Source interface {
	Window(ctx context.Context, site uint32) (redis.Window, error)
	Watch(fn func(site uint32))
}

// RunRealtimeReportRequest mirrors the GA4 Data API v1beta
// RunRealtimeReportRequest JSON.
type RunRealtimeReportRequest struct {
	Property            string                   `json:"property,omitempty"`
	Dimensions          []plan.Dimension         `json:"dimensions,omitempty"`
	Metrics             []plan.Metric            `json:"metrics,omitempty"`
	DimensionFilter     *plan.FilterExpression   `json:"dimensionFilter,omitempty"`
	MetricFilter        *plan.FilterExpression   `json:"metricFilter,omitempty"`
	Limit               plan.Int64               `json:"limit,omitempty"`
	MetricAggregations  []plan.MetricAggregation `json:"metricAggregations,omitempty"`
	OrderBys            []plan.OrderBy           `json:"orderBys,omitempty"`
	ReturnPropertyQuota bool                     `json:"returnPropertyQuota,omitempty"`
	MinuteRanges        []MinuteRange            `json:"minuteRanges,omitempty"`
}

// MinuteRange is GA4's MinuteRange: the minutes from StartMinutesAgo back
// in time to EndMinutesAgo, both inclusive (default 29 and 0: the last 30
// minutes).
type MinuteRange struct {
	Name            string      `json:"name,omitempty"`
	StartMinutesAgo *plan.Int64 `json:"startMinutesAgo,omitempty"` // int32 in GA4; a number or, in proto3 JSON, a string
	EndMinutesAgo   *plan.Int64 `json:"endMinutesAgo,omitempty"`
}

// RunRealtimeReportResponse mirrors GA4's RunRealtimeReportResponse JSON.
type RunRealtimeReportResponse struct {
	DimensionHeaders []plan.DimensionHeader `json:"dimensionHeaders,omitempty"`
	MetricHeaders    []plan.MetricHeader    `json:"metricHeaders,omitempty"`
	Rows             []plan.Row             `json:"rows,omitempty"`
	Totals           []plan.Row             `json:"totals,omitempty"`
	Maximums         []plan.Row             `json:"maximums,omitempty"`
	Minimums         []plan.Row             `json:"minimums,omitempty"`
	RowCount         int64                  `json:"rowCount"`
	PropertyQuota    *plan.PropertyQuota    `json:"propertyQuota,omitempty"`
	Kind             string                 `json:"kind"`
}

// ResponseKind is the kind GA4 gives a runRealtimeReport response.
const ResponseKind = "analyticsData#runRealtimeReport"

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

// Metric is a realtime metric: an index into rtAcc.metrics.
type Metric int

const (
	ActiveUsers Metric = iota
	EventCount
	ScreenPageViews
	MetricCount
)

// realtimeDims and realtimeMetrics are the realtime allowlists, by API name.
var (
	realtimeDims = map[string]rtDim{
		"minutesAgo": rtMinutesAgo, "country": rtCountry, "city": rtCity, "deviceCategory": rtDeviceCategory,
		"eventName": rtEventName, "unifiedScreenName": rtUnifiedScreenName,
	}
	realtimeMetrics = map[string]Metric{
		"activeUsers": ActiveUsers, "eventCount": EventCount, "screenPageViews": ScreenPageViews,
	}
)

const (
	realtimeDimNames    = "minutesAgo, country, city, deviceCategory, eventName and unifiedScreenName"
	realtimeMetricNames = "activeUsers, eventCount and screenPageViews"
)

// Plan is a validated realtime report.
type Plan struct {
	dims         []rtDim
	dimNames     []string
	metrics      []Metric
	metricNames  []string
	ranges       []rtRange
	dimFilter    *rtFilter
	metricFilter *rtFilter
	order        []plan.OrderTerm // idx: 0 = minute range, 1.. = dims; metrics by index
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

// Validate checks req against the realtime allowlists and GA4's
// rules.
func Validate(req *RunRealtimeReportRequest, id uint32) (*Plan, *plan.Error) {
	if req.Property != "" && req.Property != "properties/"+strconv.FormatUint(uint64(id), 10) {
		return nil, plan.InvalidArgument("property %s does not match the property in the URL.", plan.QuoteName(req.Property))
	}
	p := &Plan{}
	if err := p.addFields(req); err != nil {
		return nil, err
	}
	var err *plan.Error
	if p.dimFilter, err = compileRealtimeFilter(req.DimensionFilter, "dimensionFilter", false); err != nil {
		return nil, err
	}
	if p.metricFilter, err = compileRealtimeFilter(req.MetricFilter, "metricFilter", true); err != nil {
		return nil, err
	}
	if err := p.addRanges(req.MinuteRanges); err != nil {
		return nil, err
	}
	if p.limit, err = plan.RowLimit(req.Limit); err != nil {
		return nil, err
	}
	if err := p.addOrder(req.OrderBys); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Plan) addFields(req *RunRealtimeReportRequest) *plan.Error {
	if err := plan.CheckFieldCounts(len(req.Dimensions), len(req.Metrics)); err != nil {
		return err
	}
	seen := map[string]bool{}
	for i, d := range req.Dimensions {
		def, ok := realtimeDims[d.Name]
		switch {
		case len(d.DimensionExpression) > 0 && string(d.DimensionExpression) != "null":
			return plan.InvalidArgument("dimensions[%d]: dimensionExpression (dimension %s) is not supported by this server.", i, plan.QuoteName(d.Name))
		case !ok:
			return plan.InvalidArgument("dimensions[%d]: %s", i, plan.NotValid(d.Name, "realtime dimension", "realtime reports take "+realtimeDimNames))
		case seen[d.Name]:
			return plan.InvalidArgument("Duplicate dimension name %s.", plan.QuoteName(d.Name))
		}
		seen[d.Name] = true
		p.dims, p.dimNames = append(p.dims, def), append(p.dimNames, d.Name)
	}
	for i, m := range req.Metrics {
		def, ok := realtimeMetrics[m.Name]
		switch {
		case m.Expression != "" || m.Invisible:
			return plan.InvalidArgument("metrics[%d]: metric expressions and invisible metrics (metric %s) are not supported by this server.", i, plan.QuoteName(m.Name))
		case !ok:
			return plan.InvalidArgument("metrics[%d]: %s", i, plan.NotValid(m.Name, "realtime metric", "realtime reports take "+realtimeMetricNames))
		case seen[m.Name]:
			return plan.InvalidArgument("Duplicate metric name %s.", plan.QuoteName(m.Name))
		}
		seen[m.Name] = true
		p.metrics, p.metricNames = append(p.metrics, def), append(p.metricNames, m.Name)
	}
	var err *plan.Error
	p.totals, p.maximums, p.minimums, err = plan.Aggregations(req.MetricAggregations)
	return err
}

func (p *Plan) addRanges(ranges []MinuteRange) *plan.Error {
	if len(ranges) == 0 {
		ranges = []MinuteRange{{}}
	}
	if len(ranges) > maxMinuteRanges {
		return plan.InvalidArgument("Requested %d minute ranges; the limit is %d.", len(ranges), maxMinuteRanges)
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
			return plan.InvalidArgument("minuteRanges[%d].startMinutesAgo: %d is outside 0 to %d.", i, start, maxMinutesAgo)
		case end < 0 || end > maxMinutesAgo:
			return plan.InvalidArgument("minuteRanges[%d].endMinutesAgo: %d is outside 0 to %d.", i, end, maxMinutesAgo)
		case start < end:
			return plan.InvalidArgument("minuteRanges[%d]: startMinutesAgo %d is after endMinutesAgo %d (start counts further back).", i, start, end)
		}
		name, err := plan.RangeName("minuteRanges", i, r.Name)
		if err != nil {
			return err
		}
		p.ranges = append(p.ranges, rtRange{start: start, end: end, name: name})
	}
	return nil
}

func (p *Plan) addOrder(orderBys []plan.OrderBy) *plan.Error {
	for i, o := range orderBys {
		t := plan.OrderTerm{Desc: o.Desc, Idx: -1}
		switch {
		case len(o.Pivot) > 0 && string(o.Pivot) != "null":
			return plan.InvalidArgument("orderBys[%d]: pivot ordering is not supported by this server.", i)
		case o.Metric != nil && o.Dimension != nil, o.Metric == nil && o.Dimension == nil:
			return plan.InvalidArgument("orderBys[%d]: set exactly one of metric or dimension.", i)
		case o.Metric != nil:
			t.Metric = true
			for j, n := range p.metricNames {
				if n == o.Metric.MetricName {
					t.Idx = j
				}
			}
			if t.Idx < 0 {
				return plan.InvalidArgument("orderBys[%d]: metric %s is not in the request's metrics.", i, plan.QuoteName(o.Metric.MetricName))
			}
		default:
			name := o.Dimension.DimensionName
			if name == plan.DateRangeDim && len(p.ranges) > 1 {
				t.Idx = 0
			}
			for j, n := range p.dimNames {
				if n == name {
					t.Idx = j + 1
				}
			}
			if t.Idx < 0 {
				return plan.InvalidArgument("orderBys[%d]: dimension %s is not in the request's dimensions.", i, plan.QuoteName(name))
			}
			var err *plan.Error
			if t.Fold, t.Numeric, err = plan.DimensionOrderType(i, o.Dimension.OrderType); err != nil {
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
	v[rtCountry] = CountryName(c.Country)
	v[rtCity] = NotSet(c.City)
	v[rtDeviceCategory] = NotSet(c.Device)
	v[rtEventName] = NotSet(c.EventName)
	v[rtUnifiedScreenName] = NotSet(c.Screen)
	return v
}

// CountryName is GA4's country: the English name of the ISO code, the code
// as sent when it has none.
func CountryName(code string) string {
	if name, ok := plan.CountryNames[strings.ToUpper(code)]; ok {
		return name
	}
	return NotSet(code)
}

func NotSet(s string) string {
	if s == "" {
		return plan.NotSet
	}
	return s
}
