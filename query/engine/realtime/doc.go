// Package realtime answers runRealtimeReport from a Source (the realtime
// store's per-minute counters of the last 30 minutes, storage/redis):
// Validate checks a request against the realtime allowlist with
// query/plan's filter trees and errors, Run groups, filters and orders the
// window's cells in Go with the same rules as the SQL engines. The
// realtime WebSocket (package query) streams the same answers.
package realtime
