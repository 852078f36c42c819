package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// queueCounters are the agent's group-commit counters from its /metrics.
type queueCounters struct {
	appended, commits float64
}

// ParseQueueCounters reads analytics_queue_appended_events_total and
// analytics_queue_commits_total out of a Prometheus text exposition.
func ParseQueueCounters(b []byte) (queueCounters, error) {
	var c queueCounters
	var haveA, haveC bool
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, val, ok := bytes.Cut(sc.Bytes(), []byte(" "))
		if !ok {
			continue
		}
		var dst *float64
		switch string(name) {
		case "analytics_queue_appended_events_total":
			dst, haveA = &c.appended, true
		case "analytics_queue_commits_total":
			dst, haveC = &c.commits, true
		default:
			continue
		}
		v, err := strconv.ParseFloat(string(bytes.TrimSpace(val)), 64)
		if err != nil {
			return c, fmt.Errorf("bench: agent metrics: %s: %w", name, err)
		}
		*dst = v
	}
	if !haveA || !haveC {
		return c, fmt.Errorf("bench: agent metrics lack the queue's appended and commit counters")
	}
	return c, nil
}

// queueCounters scrapes the agent's /metrics.
func (r *run) queueCounters(ctx context.Context) (queueCounters, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.st.agentURL+"/metrics", nil)
	if err != nil {
		return queueCounters{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return queueCounters{}, fmt.Errorf("bench: agent metrics: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return queueCounters{}, fmt.Errorf("bench: agent metrics: %w", err)
	}
	return ParseQueueCounters(b)
}
