// Package rollups answers reports over whole local days from the daily
// rollups (rollup_days and its packs, session_rollups), when they hold
// what the report asks (Cover): grouping, ordering, paging and summaries
// run in Go in the order the raw engine's statement uses, so both give one
// answer; user and session counts merge HyperLogLog sketches.
//
// The rollups' layout (days, packs, the users and new users markers) is storage's:
// statements read cells through postgres.RollupsIn and
// postgres.SessionRollupsIn, counters summed per dim_id through
// postgres.SumRollupCounters and sketches through
// postgres.ReadRollupSketches. See docs/architecture.md, "Reports: scopes
// and engines".
package rollups
