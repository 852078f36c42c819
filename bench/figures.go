package bench

// figures is the table a run prints, in order. Keys are results.json keys.
func figures(quick bool) []Figure {
	atLeast := func(limit float64) *Target { return &Target{OnRatio: true, AtLeast: true, Limit: limit} }
	fs := []Figure{
		{Name: "single-hit ingest via agent (durable), hits/s, edge and aggregator hosts on their own CPUs", Key: "ingest_hits_per_s",
			Baseline: "bare_http_per_s", Ratio: "ingest_ratio_vs_bare", Target: atLeast(0.6)},
		{Name: "single-hit ingest via agent (durable), hits/s, every process sharing every CPU", Key: "ingest_hits_per_s_shared",
			Baseline: "bare_http_per_s_shared", Ratio: "ingest_ratio_vs_bare_shared"},
		{Name: "CPU per single hit, µs: agent (baseline: harness serving the bare handler)", Key: "ingest_agent_cpu_us_per_hit",
			Baseline: "bare_http_cpu_us_per_hit"},
		{Name: "single hits acknowledged but not stored", Key: "ingest_events_lost", Target: &Target{Limit: 0}},
		{Name: "batched ingest via agent (20 events/POST), events/s", Key: "batched_events_per_s"},
		{Name: "CPU per event of batched ingest, µs: agent (serving, sealing, shipping)", Key: "batched_agent_cpu_us_per_event"},
		{Name: "Measurement Protocol ingest via agent (25 events/POST), events/s", Key: "mp_batched_events_per_s"},
		{Name: "CPU per event of Measurement Protocol ingest, µs: agent", Key: "mp_agent_cpu_us_per_event"},
		{Name: "end-to-end into PostgreSQL, events/s (baseline: raw COPY rows/s)", Key: "pipeline_events_per_s",
			Baseline: "copy_rows_per_s", Ratio: "pipeline_ratio_vs_copy", Target: atLeast(0.35)},
		{Name: "events acknowledged but not stored", Key: "pipeline_events_lost", Target: &Target{Limit: 0}},
		{Name: "CPU per stored event end to end, µs: every process of the run", Key: "pipeline_cpu_us_per_event_total"},
		{Name: "CPU per stored event end to end, µs: agent", Key: "pipeline_cpu_us_per_event_agent"},
		{Name: "CPU per stored event end to end, µs: aggregator", Key: "pipeline_cpu_us_per_event_aggregator"},
		{Name: "CPU per stored event end to end, µs: PostgreSQL (postmaster and every backend)", Key: "pipeline_cpu_us_per_event_postgres"},
		{Name: "CPU per stored event end to end, µs: load generator (wrk; the go generator counts in the harness)", Key: "pipeline_cpu_us_per_event_generator"},
		{Name: "CPU per stored event end to end, µs: harness", Key: "pipeline_cpu_us_per_event_harness"},
		{Name: "machine's busy share of its CPU time over the end-to-end phase (1 = every core busy)", Key: "pipeline_machine_busy_share"},
		{Name: "reports' lag behind the aggregator's ack during the end-to-end send (oldest staged row's age, sampled every 250 ms), p50, s",
			Key: "pipeline_staged_lag_p50_seconds"},
		{Name: "reports' lag behind the aggregator's ack during the end-to-end send, max, s", Key: "pipeline_staged_lag_max_seconds"},
		{Name: "end-to-end: last event in reports after the send's end, s", Key: "pipeline_tail_seconds"},
		{Name: "access log import, reading (avila import --dry-run: parse, privacy, enrich, encode), lines/s", Key: "import_read_lines_per_s",
			Target: &Target{AtLeast: true, Limit: 100_000}},
		{Name: "access log import into PostgreSQL (avila import), lines/s", Key: "import_lines_per_s"},
		{Name: "write stage, one site, two aggregator nodes, events/s (baseline: one node)", Key: "nodes_2_events_per_s",
			Baseline: "nodes_1_events_per_s", Ratio: "nodes_2_ratio_vs_1", Target: atLeast(1)},
		{Name: "longest delivery stall after SIGKILL of the agent's aggregator (3 nodes), s", Key: "failover_stall_seconds",
			Target: &Target{Limit: 2}},
		{Name: "events acknowledged but not stored across that failover", Key: "failover_events_lost", Target: &Target{Limit: 0}},
	}
	sizes := []string{"1m"}
	if !quick {
		sizes = append(sizes, "10m")
	}
	var disk []Figure
	for _, s := range sizes {
		n := map[string]string{"1m": "1M", "10m": "10M"}[s]
		key := "bytes_per_event_disk"
		if s != "1m" {
			key += "_" + s
		}
		disk = append(disk, Figure{Name: "bytes per event on disk (events, sessions, rollups, dims, profiles, indexes), " + n + " events",
			Key: key, Target: &Target{Limit: 100}})
		fs = append(fs,
			Figure{Name: "dashboard set, first run (cold), ms total, " + n + " events", Key: "query_cold_ms_" + s},
			Figure{Name: "dashboard request p50 (no query cache), ms, " + n + " events", Key: "query_p50_ms_" + s},
			Figure{Name: "dashboard request p99 (no query cache), ms, " + n + " events", Key: "query_p99_ms_" + s,
				Target: &Target{Limit: map[string]float64{"1m": 50, "10m": 100}[s]}},
			Figure{Name: "dashboard request p50 over gRPC (no query cache), ms, " + n + " events", Key: "query_p50_ms_" + s + "_grpc"},
			Figure{Name: "dashboard request p99 over gRPC (no query cache), ms, " + n + " events", Key: "query_p99_ms_" + s + "_grpc"},
			Figure{Name: "cross-scope request p50 (event metrics by session source or landing page, sessions by page; no query cache), ms, " + n + " events",
				Key: "query_p50_ms_" + s + "_session_shapes"},
			Figure{Name: "cross-scope request p99 (no query cache), ms, " + n + " events", Key: "query_p99_ms_" + s + "_session_shapes"},
			Figure{Name: "dashboard request p50 (query cache warm), ms, " + n + " events", Key: "query_p50_ms_" + s + "_cached"},
			Figure{Name: "dashboard request p99 (query cache warm), ms, " + n + " events", Key: "query_p99_ms_" + s + "_cached"},
			Figure{Name: "erasure of one data subject (rows, its pack slices, sessions, its rollup cells corrected), median of 5, ms, " + n + " events",
				Key: "gdpr_erase_ms_" + s, Target: &Target{Limit: 1000}},
		)
	}
	fs = append(fs, disk...)
	return append(fs,
		Figure{Name: "wire bytes per event (zstd batch; baseline: raw HTTP request)", Key: "wire_bytes_per_event",
			Baseline: "raw_request_bytes_per_event", Ratio: "wire_ratio_vs_raw"},
		Figure{Name: "agent RSS idle, MB", Key: "agent_rss_mb_idle"},
		Figure{Name: "agent RSS under load (peak sampled), MB", Key: "agent_rss_mb_load", Target: &Target{Limit: 50}},
		Figure{Name: "aggregator RSS idle, MB", Key: "aggregator_rss_mb_idle"},
		Figure{Name: "aggregator RSS under load (peak sampled), MB", Key: "aggregator_rss_mb_load", Target: &Target{Limit: 250}},
		Figure{Name: "idle CPU, agent + aggregator, % of one core", Key: "idle_cpu_percent", Target: &Target{Limit: 1}},
	)
}
