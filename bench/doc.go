// Package bench is the benchmark harness behind `make bench`: it starts
// what the pipeline needs on one machine (a managed PostgreSQL unless a
// database URL is given, and the real avila-aggregator and avila-agent
// binaries built into a work directory), drives them over loopback, and
// reports each speed figure beside a baseline measured in the same run, so
// results stay comparable on noisy machines:
//
//   - single-hit ingest through the agent (a 204 only after fsync) against a
//     bare net/http handler answering 204, with the same load generator (wrk
//     when installed, else the harness's own keep-alive generator), once
//     with the CPUs split between an edge host (generator, harness, agent)
//     and an aggregator host (aggregator, PostgreSQL), once all shared, with
//     CPU per hit and a check that every acknowledged hit was stored;
//   - batched ingest, POST bodies of 20 events;
//   - end-to-end sustained events/s from the first hit to the last row
//     visible in PostgreSQL, against a raw pgx CopyFrom of the same rows into
//     a table of the same shape;
//   - the dashboard's runReport requests over HTTP on 30 days of a 90-day
//     data set of 1M (and 10M) events generated with COPY, cold and warm;
//   - bytes per event on disk, wire bytes per event and raw request bytes per
//     event;
//   - resident memory of agent and aggregator at idle and under load, and
//     their CPU use at idle (from /proc).
//
// Run writes a Markdown table and a flat JSON object of numbers
// (results.json). Every load loop is bounded in count and time. The pure
// parts (percentiles, /proc parsing, wrk output, the results' keys) are
// unit-tested; the heavy run happens only under `make bench`.
package bench
