package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Wrk runs the wrk HTTP benchmarking tool (Debian package wrk).
type Wrk struct {
	Path    string // the wrk binary
	Threads int    // wrk -t; 0: 2
	Dir     string // where request scripts are written
}

// FindWrk returns a Wrk when the binary is on PATH.
func FindWrk(dir string) (*Wrk, bool) {
	p, err := exec.LookPath("wrk")
	if err != nil {
		return nil, false
	}
	return &Wrk{Path: p, Dir: dir}, true
}

// Name implements Generator.
func (w *Wrk) Name() string { return "wrk" }

// Run implements Generator. wrk knows no request count, so l.MaxRequests
// is not honoured: only Duration bounds the run. Several requests are sent
// round robin by a Lua request function, each formatted once per thread.
func (w *Wrk) Run(ctx context.Context, reqs []Request, l Load) (LoadResult, error) {
	if len(reqs) == 0 || l.Connections <= 0 || l.Duration < time.Second {
		return LoadResult{}, errors.New("bench: wrk: want a request, connections and a duration of at least 1s")
	}
	threads := w.Threads
	if threads <= 0 {
		threads = 2
	}
	threads = min(threads, l.Connections)
	script := filepath.Join(w.Dir, "wrk-request.lua")
	if err := os.WriteFile(script, []byte(wrkScript(reqs)), 0o644); err != nil {
		return LoadResult{}, fmt.Errorf("bench: wrk: %w", err)
	}
	// wrk stops itself at -d; the context's extra time covers its start and exit.
	ctx, cancel := context.WithTimeout(ctx, l.Duration+30*time.Second)
	defer cancel()
	secs := max(int(l.Duration.Round(time.Second)/time.Second), 1)
	cmd := exec.CommandContext(ctx, w.Path, "-t", strconv.Itoa(threads), "-c", strconv.Itoa(l.Connections),
		"-d", strconv.Itoa(secs)+"s", "--timeout", "10s", "-s", script, reqs[0].URL)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return LoadResult{}, fmt.Errorf("bench: wrk: %w: %s%s", err, errOut.Bytes(), out.Bytes())
	}
	res, err := ParseWrk(out.Bytes())
	if err != nil {
		return LoadResult{}, fmt.Errorf("%w\nwrk output:\n%s", err, out.Bytes())
	}
	return res, nil
}

// wrkScript sets wrk's request in Lua: one request as wrk's defaults, or
// several sent in turn by a request function.
func wrkScript(reqs []Request) string {
	var b strings.Builder
	if len(reqs) == 1 {
		r := reqs[0]
		fmt.Fprintf(&b, "wrk.method = %s\n", luaQuote(r.Method))
		for _, k := range slices.Sorted(maps.Keys(r.Header)) {
			for _, v := range r.Header[k] {
				fmt.Fprintf(&b, "wrk.headers[%s] = %s\n", luaQuote(k), luaQuote(v))
			}
		}
		if len(r.Body) > 0 {
			fmt.Fprintf(&b, "wrk.body = %s\n", luaQuote(string(r.Body)))
		}
		return b.String()
	}
	b.WriteString("local specs = {\n")
	for _, r := range reqs {
		path := r.URL
		if u, err := url.Parse(r.URL); err == nil {
			path = u.RequestURI()
		}
		fmt.Fprintf(&b, "  {%s, %s, {", luaQuote(r.Method), luaQuote(path))
		for _, k := range slices.Sorted(maps.Keys(r.Header)) {
			if len(r.Header[k]) > 0 {
				fmt.Fprintf(&b, "[%s] = %s, ", luaQuote(k), luaQuote(r.Header[k][0]))
			}
		}
		fmt.Fprintf(&b, "}, %s},\n", luaQuote(string(r.Body)))
	}
	b.WriteString(`}
local reqs, n = {}, 0
function init(args)
  for i, s in ipairs(specs) do
    reqs[i] = wrk.format(s[1], s[2], s[3], s[4] ~= "" and s[4] or nil)
  end
end
function request()
  n = n % #reqs + 1
  return reqs[n]
end
`)
	return b.String()
}

// luaQuote writes s as a Lua string literal: printable ASCII as is, quote
// and backslash escaped, every other byte as a decimal escape.
func luaQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c >= 0x20 && c < 0x7f:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "\\%03d", c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

var (
	wrkTotalRE  = regexp.MustCompile(`^\s*(\d+) requests in ([0-9.]+)(us|ms|s|m|h),`)
	wrkSocketRE = regexp.MustCompile(`^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkNon2xxRE = regexp.MustCompile(`^\s*Non-2xx or 3xx responses: (\d+)`)
)

var wrkUnits = map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second, "m": time.Minute, "h": time.Hour}

// ParseWrk reads the counts out of wrk's report. wrk counts a request in
// "N requests" when it got an answer; socket errors are the rest.
func ParseWrk(out []byte) (LoadResult, error) {
	var res LoadResult
	var haveTotal bool
	var non2xx int64
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if m := wrkTotalRE.FindStringSubmatch(line); m != nil {
			n, _ := strconv.ParseInt(m[1], 10, 64)
			secs, err := strconv.ParseFloat(m[2], 64)
			if err != nil {
				return LoadResult{}, fmt.Errorf("bench: wrk: elapsed %q: %w", m[2], err)
			}
			res.Requests, res.Elapsed, haveTotal = n, time.Duration(secs*float64(wrkUnits[m[3]])), true
		}
		if m := wrkSocketRE.FindStringSubmatch(line); m != nil {
			for _, s := range m[1:] {
				n, _ := strconv.ParseInt(s, 10, 64)
				res.Errors += n
			}
		}
		if m := wrkNon2xxRE.FindStringSubmatch(line); m != nil {
			non2xx, _ = strconv.ParseInt(m[1], 10, 64)
		}
	}
	if !haveTotal {
		return LoadResult{}, errors.New("bench: wrk: no \"N requests in T\" line in its output")
	}
	if non2xx > res.Requests {
		return LoadResult{}, fmt.Errorf("bench: wrk: %d non-2xx answers of %d requests", non2xx, res.Requests)
	}
	res.OK = res.Requests - non2xx
	return res, nil
}
