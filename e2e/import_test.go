package e2e

import (
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/avila-analytics/avila/internal/testenv"
)

// A gzipped nginx log goes in through `avila import`; its page views are
// reported exactly, a second import of the same file stores nothing, and
// neither an address nor a user agent of the log reaches the database.
func TestImportAccessLogOnceAndPrivately(t *testing.T) {
	s := newStack(t, testenv.PostgresURL(t))
	const ua = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
	// 3000 lines 10 s apart, within one UTC day (a visitor's id changes
	// with the day, as the agent's daily salts do).
	start := time.Now().UTC().Truncate(24 * time.Hour).Add(30 * time.Minute)
	if time.Since(start) < 9*time.Hour {
		start = start.Add(-24 * time.Hour)
	}
	var lines []string
	pages := 0
	perPath := map[string]int{}
	for i := range 3000 {
		at := start.Add(time.Duration(i) * 10 * time.Second).Format("02/Jan/2006:15:04:05 -0700")
		ip := fmt.Sprintf("203.0.%d.9", i%97) // visitor ids see /24 networks
		uri, status, agent := fmt.Sprintf("/imported/%d", i%13), 200, ua
		switch i % 10 {
		case 3:
			uri = "/assets/app.js"
		case 5:
			status = 404
		case 7:
			agent = "Googlebot/2.1 (+http://www.google.com/bot.html)"
		default:
			pages++
			perPath[uri]++
		}
		lines = append(lines, fmt.Sprintf(`10.1.1.1 - - [%s] "GET %s HTTP/1.1" %d 100 "-" "%s" "%s"`, at, uri, status, agent, ip))
	}
	path := filepath.Join(t.TempDir(), "access.log.1.gz")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	z := gzip.NewWriter(f)
	fmt.Fprintln(z, strings.Join(lines, "\n"))
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()

	args := []string{"import", "--property", strconv.Itoa(int(s.site.ID)), "--format", "nginx",
		"--aggregator", s.agg.ready["quic"], "--ca", s.ca, "--trusted-proxies", "10.0.0.0/8", path}
	summary := regexp.MustCompile(`(\d+) lines, (\d+) page views: (\d+) stored now, (\d+) stored by an earlier run`)
	run := func() []int {
		out := avila(t, args...)
		m := summary.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("avila import printed %q, want its summary", out)
		}
		var n []int
		for _, s := range m[1:] {
			v, _ := strconv.Atoi(s)
			n = append(n, v)
		}
		return n
	}
	if got, want := fmt.Sprint(run()), fmt.Sprint([]int{3000, pages, pages, 0}); got != want {
		t.Fatalf("first import: lines, page views, stored, already = %s, want %s", got, want)
	}
	eventually(t, time.Minute, fmt.Sprintf("eventCount = %d", pages), func() error {
		if n, err := s.pageViews(); err != nil || n != pages {
			return fmt.Errorf("screenPageViews %d (%v)", n, err)
		}
		return nil
	})
	if got, want := fmt.Sprint(run()), fmt.Sprint([]int{3000, pages, 0, pages}); got != want {
		t.Fatalf("second import: lines, page views, stored, already = %s, want %s", got, want)
	}
	if n, err := s.pageViews(); err != nil || n != pages {
		t.Fatalf("after the second import screenPageViews %d (%v), want %d", n, err, pages)
	}
	views := s.report(t, `{"dateRanges":[{"startDate":"2daysAgo","endDate":"today"}],"dimensions":[{"name":"pagePath"}],`+
		`"metrics":[{"name":"screenPageViews"}],"dimensionFilter":{"filter":{"fieldName":"pagePath","stringFilter":{"value":"/imported/1"}}}}`)
	if len(views) != 1 || int(views[0]) != perPath["/imported/1"] {
		t.Fatalf("screenPageViews of /imported/1 = %v, want %d", views, perPath["/imported/1"])
	}

	ctx := context.Background()
	var dims string
	if err := s.db.QueryRow(ctx, `SELECT coalesce(string_agg(value, E'\n'), '') FROM dims`).Scan(&dims); err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"203.0.", "10.1.1.1", "Firefox/128.0", "Googlebot"} {
		if strings.Contains(dims, secret) {
			t.Errorf("the database holds %q from the log", secret)
		}
	}
	var dead int
	if err := s.db.QueryRow(ctx, `SELECT count(*) FROM dead_letters`).Scan(&dead); err != nil || dead != 0 {
		t.Fatalf("%d dead letters (%v), want 0", dead, err)
	}
	// Distinct clients through the trusted proxy are distinct visitors.
	users := s.report(t, `{"dateRanges":[{"startDate":"2daysAgo","endDate":"today"}],"metrics":[{"name":"totalUsers"}]}`)
	if len(users) != 1 || users[0] < 95 || users[0] > 99 {
		t.Fatalf("totalUsers %v, want 97 (one per forwarded client network), give or take the sketch's error", users)
	}
}
