package bench

import "testing"

func TestParseQueueCounters(t *testing.T) {
	text := `# HELP analytics_queue_appended_events_total Events appended to the queue since start.
# TYPE analytics_queue_appended_events_total counter
analytics_queue_appended_events_total 52000
analytics_queue_commits_total 1.5e+03
analytics_ship_acks_total{status="ok"} 7
`
	c, err := ParseQueueCounters([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if c.appended != 52000 || c.commits != 1500 {
		t.Fatalf("got %+v, want 52000 appended, 1500 commits", c)
	}
	if _, err := ParseQueueCounters([]byte("analytics_queue_commits_total 3\n")); err == nil {
		t.Fatal("no error for metrics without the appended counter")
	}
	if _, err := ParseQueueCounters([]byte("analytics_queue_commits_total x\nanalytics_queue_appended_events_total 1\n")); err == nil {
		t.Fatal("no error for a counter that is not a number")
	}
}
