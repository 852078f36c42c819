// Package jobs runs the aggregator's periodic upkeep: daily partitions of the
// events table (yesterday through three days ahead) and the daily visitor-id
// salts (today and tomorrow created, expired ones deleted).
//
// Every job is idempotent and safe to run on several nodes at once, so no
// election is needed for them; a node runs them once at start-up, before it
// reports ready, and then every Interval.
package jobs
