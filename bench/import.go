package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// importLog measures `avila import` on a generated combined-format access
// log: first reading it alone (--dry-run: parse, the agent's privacy rules,
// enrichment, encoding), then importing it into the stack's aggregator and
// PostgreSQL. Both are whole-command wall times, start-up included.
func (r *run) importLog(ctx context.Context) error {
	path := filepath.Join(r.st.work, "access.log")
	if err := writeAccessLog(path, r.sz.importLines); err != nil {
		return err
	}
	site := r.st.sites[siteImport]
	args := []string{"import", "--property", strconv.FormatUint(uint64(site.ID), 10), "--format", "combined",
		"--aggregator", r.st.agg.Ready["quic"], "--ca", r.st.agg.Ready["ca"], path}
	timed := func(extra ...string) (time.Duration, error) {
		cmd := exec.CommandContext(ctx, filepath.Join(r.st.bins, "avila"), append(args[:1:1], append(extra, args[1:]...)...)...)
		start := time.Now()
		out, err := cmd.CombinedOutput()
		if err != nil {
			return 0, fmt.Errorf("bench: avila import: %w\n%s", err, out)
		}
		r.log.Info("import", "output", string(out))
		return time.Since(start), nil
	}
	dry, err := timed("--dry-run")
	if err != nil {
		return err
	}
	r.set("import_read_lines_per_s", float64(r.sz.importLines)/dry.Seconds())
	full, err := timed()
	if err != nil {
		return err
	}
	r.set("import_lines_per_s", float64(r.sz.importLines)/full.Seconds())
	return nil
}

// writeAccessLog writes n combined-format lines of a busy day: mostly page
// views from a few thousand visitors, with assets, errors and crawlers
// among them as in a real log.
func writeAccessLog(path string, n int) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("bench: access log: %w", err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	uas := []string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
		"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
		"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.6723.58 Mobile Safari/537.36",
		"Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
	}
	refs := []string{"-", "https://www.google.com/", "https://news.example/story", "https://" + benchHost + "/"}
	start := time.Now().Add(-12 * time.Hour)
	step := 12 * time.Hour / time.Duration(max(n, 1))
	for i := range n {
		uri, status := fmt.Sprintf("/page/%d?utm_source=mail&id=%d", i%500, i), 200
		switch i % 20 {
		case 1, 2, 3:
			uri = fmt.Sprintf("/static/app.%d.js", i%7)
		case 4:
			uri = "/img/logo.png"
		case 5:
			status = 404
		}
		fmt.Fprintf(w, "%d.%d.%d.%d - - [%s] \"GET %s HTTP/1.1\" %d 5120 \"%s\" \"%s\"\n",
			11+i%200, i%251, (i/7)%256, 1+i%254, start.Add(time.Duration(i)*step).Format("02/Jan/2006:15:04:05 -0700"),
			uri, status, refs[i%len(refs)], uas[i%len(uas)])
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("bench: access log: %w", err)
	}
	return f.Close()
}
