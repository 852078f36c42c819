// Package funnel runs a plan.FunnelPlan (v1alpha runFunnelReport): one
// statement ranks each visitor's events in the range by time and decides
// with window frames whether each event reaches each step, honoring
// closed and open funnels, isDirectlyFollowedBy and
// withinDurationFromPriorStep (buildFunnelSQL); Run shapes the funnel
// table and visualization sub-reports.
package funnel
