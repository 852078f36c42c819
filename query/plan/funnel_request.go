package plan

import "encoding/json"

// RunFunnelReportRequest mirrors the GA4 Data API v1alpha
// RunFunnelReportRequest JSON. Fields GA4 defines but this server does not
// evaluate (funnelNextAction, segments, dimensionFilter) are kept as raw JSON
// so that a request using them is refused by name, not answered as if they
// were absent.
type RunFunnelReportRequest struct {
	Property                string           `json:"property,omitempty"`
	DateRanges              []DateRange      `json:"dateRanges,omitempty"`
	Funnel                  *Funnel          `json:"funnel,omitempty"`
	FunnelBreakdown         *FunnelBreakdown `json:"funnelBreakdown,omitempty"`
	FunnelNextAction        json.RawMessage  `json:"funnelNextAction,omitempty"`
	FunnelVisualizationType string           `json:"funnelVisualizationType,omitempty"`
	Segments                json.RawMessage  `json:"segments,omitempty"`
	Limit                   Int64            `json:"limit,omitempty"`
	DimensionFilter         json.RawMessage  `json:"dimensionFilter,omitempty"`
	ReturnPropertyQuota     bool             `json:"returnPropertyQuota,omitempty"`
}

// Funnel is the sequence of steps users pass through. In a closed funnel
// (the default) users must enter at the first step; in an open funnel they
// may enter at any step.
type Funnel struct {
	IsOpenFunnel bool         `json:"isOpenFunnel,omitempty"`
	Steps        []FunnelStep `json:"steps"`
}

// FunnelStep is one step: the events that satisfy it, and how it must
// follow the prior step. WithinDurationFromPriorStep is a proto3 JSON
// Duration ("300s", "1.5s").
type FunnelStep struct {
	Name                        string                  `json:"name,omitempty"`
	IsDirectlyFollowedBy        bool                    `json:"isDirectlyFollowedBy,omitempty"`
	WithinDurationFromPriorStep string                  `json:"withinDurationFromPriorStep,omitempty"`
	FilterExpression            *FunnelFilterExpression `json:"filterExpression,omitempty"`
}

// FunnelFilterExpression is exactly one of a group, a negation, a field
// filter or an event filter.
type FunnelFilterExpression struct {
	AndGroup          *FunnelFilterExpressionList `json:"andGroup,omitempty"`
	OrGroup           *FunnelFilterExpressionList `json:"orGroup,omitempty"`
	NotExpression     *FunnelFilterExpression     `json:"notExpression,omitempty"`
	FunnelFieldFilter *FunnelFieldFilter          `json:"funnelFieldFilter,omitempty"`
	FunnelEventFilter *FunnelEventFilter          `json:"funnelEventFilter,omitempty"`
}

// FunnelFilterExpressionList holds the members of an andGroup or orGroup.
type FunnelFilterExpressionList struct {
	Expressions []FunnelFilterExpression `json:"expressions"`
}

// FunnelFieldFilter tests one dimension of the event, like a runReport
// dimension filter.
type FunnelFieldFilter struct {
	FieldName     string         `json:"fieldName"`
	StringFilter  *StringFilter  `json:"stringFilter,omitempty"`
	InListFilter  *InListFilter  `json:"inListFilter,omitempty"`
	NumericFilter *NumericFilter `json:"numericFilter,omitempty"`
	BetweenFilter *BetweenFilter `json:"betweenFilter,omitempty"`
}

// FunnelEventFilter matches events of one name (exact, case-sensitive),
// optionally only those whose parameters pass
// FunnelParameterFilterExpression.
type FunnelEventFilter struct {
	EventName                       string                           `json:"eventName"`
	FunnelParameterFilterExpression *FunnelParameterFilterExpression `json:"funnelParameterFilterExpression,omitempty"`
}

// FunnelParameterFilterExpression is exactly one of a group, a negation or
// a parameter filter.
type FunnelParameterFilterExpression struct {
	AndGroup              *FunnelParameterFilterExpressionList `json:"andGroup,omitempty"`
	OrGroup               *FunnelParameterFilterExpressionList `json:"orGroup,omitempty"`
	NotExpression         *FunnelParameterFilterExpression     `json:"notExpression,omitempty"`
	FunnelParameterFilter *FunnelParameterFilter               `json:"funnelParameterFilter,omitempty"`
}

// FunnelParameterFilterExpressionList holds the members of a parameter
// andGroup or orGroup.
type FunnelParameterFilterExpressionList struct {
	Expressions []FunnelParameterFilterExpression `json:"expressions"`
}

// FunnelParameterFilter tests one string event parameter (its value, or
// "(not set)" when absent). Item parameters are not stored by this server.
type FunnelParameterFilter struct {
	EventParameterName string         `json:"eventParameterName,omitempty"`
	ItemParameterName  string         `json:"itemParameterName,omitempty"`
	StringFilter       *StringFilter  `json:"stringFilter,omitempty"`
	InListFilter       *InListFilter  `json:"inListFilter,omitempty"`
	NumericFilter      *NumericFilter `json:"numericFilter,omitempty"`
	BetweenFilter      *BetweenFilter `json:"betweenFilter,omitempty"`
}

// FunnelBreakdown splits each step of the funnel table by one dimension.
// Limit is the number of distinct values shown: 5 when unset, at most 15.
type FunnelBreakdown struct {
	BreakdownDimension *Dimension `json:"breakdownDimension,omitempty"`
	Limit              Int64      `json:"limit,omitempty"`
}

// RunFunnelReportResponse mirrors GA4's RunFunnelReportResponse JSON.
type RunFunnelReportResponse struct {
	FunnelTable         *FunnelSubReport `json:"funnelTable"`
	FunnelVisualization *FunnelSubReport `json:"funnelVisualization"`
	PropertyQuota       *PropertyQuota   `json:"propertyQuota,omitempty"`
	Kind                string           `json:"kind"`
}

// FunnelSubReport is one table of a funnel report.
type FunnelSubReport struct {
	DimensionHeaders []DimensionHeader `json:"dimensionHeaders"`
	MetricHeaders    []MetricHeader    `json:"metricHeaders"`
	Rows             []Row             `json:"rows,omitempty"`
}

const FunnelKind = "analyticsData#runFunnelReport"
