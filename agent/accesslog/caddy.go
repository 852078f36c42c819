package accesslog

import (
	"encoding/json"
	"math"
	"net/netip"
	"strconv"
	"time"
)

// caddyLine is the part of a Caddy access log entry the importer reads.
type caddyLine struct {
	TS      json.RawMessage `json:"ts"` // seconds as a number, or a time string (time_format)
	Request struct {
		RemoteIP string              `json:"remote_ip"`
		ClientIP string              `json:"client_ip"` // set by Caddy from its trusted_proxies
		Method   string              `json:"method"`
		Host     string              `json:"host"`
		URI      string              `json:"uri"`
		Headers  map[string][]string `json:"headers"`
	} `json:"request"`
	Status      int                 `json:"status"`
	RespHeaders map[string][]string `json:"resp_headers"`
}

func parseCaddy(line []byte, r *Record) error {
	*r = Record{}
	var c caddyLine
	if err := json.Unmarshal(line, &c); err != nil {
		return malformed("not a Caddy JSON entry")
	}
	t, ok := caddyTime(c.TS)
	if !ok {
		return malformed("ts " + string(c.TS))
	}
	r.Time = t
	// client_ip is the client as Caddy's trusted_proxies resolved it.
	addr := c.Request.ClientIP
	if addr == "" {
		addr = c.Request.RemoteIP
	}
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return malformed("request.remote_ip " + strconv.Quote(addr))
	}
	r.IP = ip.Unmap()
	if c.Request.Method == "" || c.Request.URI == "" || c.Status == 0 {
		return malformed("no request.method, request.uri or status")
	}
	r.Method, r.Host, r.URI, r.Status = c.Request.Method, c.Request.Host, c.Request.URI, c.Status
	r.UserAgent = first(c.Request.Headers, "User-Agent")
	r.Referrer = first(c.Request.Headers, "Referer")
	r.ContentType = first(c.RespHeaders, "Content-Type")
	return nil
}

// caddyTime reads ts: Unix seconds (Caddy's default) or a time string.
func caddyTime(raw json.RawMessage) (time.Time, bool) {
	var secs float64
	if err := json.Unmarshal(raw, &secs); err == nil {
		if secs <= 0 || secs > math.MaxInt32*4 {
			return time.Time{}, false
		}
		whole, frac := math.Modf(secs)
		return time.Unix(int64(whole), int64(frac*1e9)).UTC(), true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return time.Time{}, false
	}
	for _, layout := range []string{time.RFC3339Nano, "2006/01/02 15:04:05.000", clfTime} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// first is the first value of a header in Caddy's map, "" when absent.
func first(h map[string][]string, name string) string {
	if v := h[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}
