package accesslog

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"
)

// Format is an access log's line format.
type Format int

const (
	// Combined is Apache's and nginx's "combined" format:
	//   %h %l %u [%t] "%r" %>s %b "%{Referer}i" "%{User-Agent}i"
	Combined Format = iota + 1
	// Nginx is nginx's sample "main" format: combined followed by
	// "$http_x_forwarded_for"; a line without that column is read as
	// combined.
	Nginx
	// Caddy is Caddy's JSON access log (logger http.log.access).
	Caddy
)

// ParseFormat reads "combined", "nginx" or "caddy".
func ParseFormat(s string) (Format, error) {
	switch s {
	case "combined":
		return Combined, nil
	case "nginx":
		return Nginx, nil
	case "caddy":
		return Caddy, nil
	}
	return 0, fmt.Errorf("accesslog: format %q: want combined, nginx or caddy", s)
}

func (f Format) String() string {
	switch f {
	case Combined:
		return "combined"
	case Nginx:
		return "nginx"
	case Caddy:
		return "caddy"
	}
	return "format(" + strconv.Itoa(int(f)) + ")"
}

// Record is what a line says about one request. IP and UserAgent are the
// raw values: they are used in memory and never stored.
type Record struct {
	Time        time.Time
	IP          netip.Addr // the connection's peer (remote address)
	Forwarded   string     // X-Forwarded-For as logged, "" when absent
	Method      string
	Host        string // Caddy logs it; "" for the combined formats
	URI         string // path and query as requested
	Status      int
	Referrer    string
	UserAgent   string
	ContentType string // of the response; Caddy logs it, else ""
}

// errMalformed marks a line that is not in the format; the importer counts
// such lines and goes on.
var errMalformed = errors.New("malformed line")

// Parse reads one line (without its line ending) into r.
func (f Format) Parse(line []byte, r *Record) error {
	switch f {
	case Combined, Nginx:
		return parseCombined(line, f == Nginx, r)
	case Caddy:
		return parseCaddy(line, r)
	}
	return fmt.Errorf("accesslog: unknown format %d", int(f))
}

// clfTime is the time layout of the combined formats: [10/Oct/2000:13:55:36 -0700].
const clfTime = "02/Jan/2006:15:04:05 -0700"

func malformed(what string) error { return fmt.Errorf("%w: %s", errMalformed, what) }

// parseCombined reads the combined format and, with xff, nginx's trailing
// X-Forwarded-For column.
func parseCombined(line []byte, xff bool, r *Record) error {
	*r = Record{}
	host, rest, ok := bytes.Cut(line, []byte{' '})
	if !ok {
		return malformed("no fields")
	}
	ip, err := netip.ParseAddr(string(host))
	if err != nil {
		return malformed("remote address " + strconv.Quote(string(host)))
	}
	r.IP = ip.Unmap()
	// %l and %u: skip to the bracketed time.
	open := bytes.IndexByte(rest, '[')
	if open < 0 {
		return malformed("no [time]")
	}
	end := bytes.IndexByte(rest[open:], ']')
	if end < 0 {
		return malformed("no [time]")
	}
	t, err := time.Parse(clfTime, string(rest[open+1:open+end]))
	if err != nil {
		return malformed("time " + strconv.Quote(string(rest[open+1:open+end])))
	}
	r.Time = t
	rest = rest[open+end+1:]
	request, rest, err := quoted(rest)
	if err != nil {
		return malformed("request: " + err.Error())
	}
	method, target, ok := bytes.Cut(request, []byte{' '})
	if !ok {
		return malformed("request " + strconv.Quote(string(request)))
	}
	target, _, _ = bytes.Cut(target, []byte{' '}) // drop " HTTP/1.1"
	r.Method, r.URI = string(method), string(target)
	rest = bytes.TrimLeft(rest, " ")
	status, rest, _ := bytes.Cut(rest, []byte{' '})
	if r.Status, err = strconv.Atoi(string(status)); err != nil {
		return malformed("status " + strconv.Quote(string(status)))
	}
	_, rest, _ = bytes.Cut(bytes.TrimLeft(rest, " "), []byte{' '}) // %b
	ref, rest, err := quoted(rest)
	if err != nil {
		return malformed("referrer: " + err.Error())
	}
	ua, rest, err := quoted(rest)
	if err != nil {
		return malformed("user agent: " + err.Error())
	}
	r.Referrer, r.UserAgent = dash(ref), dash(ua)
	if xff {
		if fwd, _, err := quoted(rest); err == nil {
			r.Forwarded = dash(fwd)
		}
	}
	return nil
}

// quoted reads a double-quoted field after optional spaces and returns its
// unescaped content and what follows it. nginx escapes " and \ as \x22 and
// \x5C; Apache as \" and \\.
func quoted(b []byte) (field, rest []byte, err error) {
	b = bytes.TrimLeft(b, " ")
	if len(b) == 0 || b[0] != '"' {
		return nil, nil, errors.New("no opening quote")
	}
	b = b[1:]
	esc := false
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '\\':
			esc = true
			i++
		case '"':
			if !esc {
				return b[:i], b[i+1:], nil
			}
			return unescape(b[:i]), b[i+1:], nil
		}
	}
	return nil, nil, errors.New("no closing quote")
}

// unescape undoes the combined formats' escapes: \xHH, \" and \\.
func unescape(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' || i+1 == len(b) {
			out = append(out, b[i])
			continue
		}
		if b[i+1] == 'x' && i+3 < len(b) {
			if v, err := strconv.ParseUint(string(b[i+2:i+4]), 16, 8); err == nil {
				out = append(out, byte(v))
				i += 3
				continue
			}
		}
		out = append(out, b[i+1])
		i++
	}
	return out
}

// dash is s, or "" for the combined formats' "-" (no value).
func dash(b []byte) string {
	if len(b) == 1 && b[0] == '-' {
		return ""
	}
	return string(b)
}
