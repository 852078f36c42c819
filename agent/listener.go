package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/avila-analytics/avila/agent/collect"
	"github.com/avila-analytics/avila/agent/listen"
	"github.com/avila-analytics/avila/internal/httplog"
)

// HTTP server bounds. Collection requests are small (16 KiB bodies, 130 kB
// for the Measurement Protocol), so slow senders are cut off early;
// keep-alive connections from browsers and proxies may idle longer.
const (
	readTimeout  = 30 * time.Second
	writeTimeout = 30 * time.Second
	idleTimeout  = 2 * time.Minute
	// maxHeaderBytes bounds the request line and headers: gtag.js GET hits
	// carry everything in the URL, and gtag.js switches to POST well below
	// this. It is also each connection's read buffer.
	maxHeaderBytes = 16 << 10
)

// listen raises the open-file limit to its hard limit, logs both, and binds
// cfg.Listen with the connection caps: cfg's, or those derived from the
// limit.
func (a *Agent) listen(cfg Config) (*listen.Listener, error) {
	before, files, hard, err := listen.RaiseFileLimit()
	if err != nil {
		a.log.Warn("raising the open-file limit failed; the connection caps follow the limit as it is", "soft", before, "hard", hard, "err", err)
	}
	total, perIP := listen.DefaultCaps(files)
	if cfg.MaxConns > 0 {
		total = cfg.MaxConns
	}
	if cfg.MaxConnsPerIP > 0 {
		perIP = cfg.MaxConnsPerIP
	}
	a.log.Info("open-file limit", "soft_at_start", before, "soft", files, "hard", hard,
		"max_conns", total, "max_conns_per_ip", perIP)
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("agent: listen %s: %w", cfg.Listen, err)
	}
	trusted := cfg.TrustedProxies
	l, err := listen.New(ln, listen.Config{
		MaxConns: total, MaxConnsPerIP: perIP, Logger: a.log,
		Exempt: func(ip netip.Addr) bool {
			for _, p := range trusted {
				if p.Contains(ip) {
					return true
				}
			}
			return false
		},
	})
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("agent: %w", err)
	}
	return l, nil
}

// newHTTPServer is the agent's HTTP listener: fasthttp, which costs the hot
// collection paths far less CPU per hit than net/http. The collection
// endpoints are served natively (collect.Collector.FastHandler); every other
// path (the script /t.js, health, readiness, metrics) goes to the net/http
// routes through fasthttp's adaptor. Every request gets an id from one
// sequence, in the X-Request-Id answer header, and a debug log record.
func (a *Agent) newHTTPServer(col *collect.Collector, routes func(*httplog.IDs) http.Handler) *fasthttp.Server {
	ids := httplog.NewIDs()
	other := fasthttpadaptor.NewFastHTTPHandler(routes(ids))
	debug := a.log.Enabled(context.Background(), slog.LevelDebug) // the level is fixed at start-up
	handler := func(ctx *fasthttp.RequestCtx) {
		if !ctx.Request.Header.IsHTTP11() && !isHTTP1(ctx.Request.Header.Protocol()) {
			answerVersion(ctx)
			return
		}
		serve := col.FastHandler(ctx.Path())
		if serve == nil {
			other(ctx)
			return
		}
		id := ids.Next()
		ctx.Response.Header.Set(httplog.Header, id)
		if !debug {
			serve(ctx)
			return
		}
		start := time.Now()
		serve(ctx)
		a.log.LogAttrs(ctx, slog.LevelDebug, "request",
			slog.String("request", id),
			slog.String("method", string(ctx.Method())), slog.String("path", string(ctx.Path())),
			slog.Int("status", ctx.Response.StatusCode()), slog.Duration("took", time.Since(start)))
	}
	return &fasthttp.Server{
		Handler:            handler,
		ErrorHandler:       a.httpError(col.MaxBodyBytes()),
		ReadTimeout:        readTimeout,
		WriteTimeout:       writeTimeout,
		IdleTimeout:        idleTimeout,
		ReadBufferSize:     maxHeaderBytes,
		MaxRequestBodySize: int(col.MaxBodyBytes()),
		// The listener (package listen) caps connections and answers
		// those past the cap; fasthttp's own cap must not come first.
		Concurrency:           a.ln.Stats().MaxConns,
		NoDefaultServerHeader: true,
		NoDefaultContentType:  true,
		// The collection paths never read a multipart form.
		DisablePreParseMultipartForm: true,
		CloseOnShutdown:              true,
		Logger:                       fastLogger{a.log},
	}
}

// httpError answers a request fasthttp could not read, as net/http would
// but with the reason: 431 for headers past maxHeaderBytes, 413 for a body
// past maxBody, 408 for a sender too slow, else 400.
func (a *Agent) httpError(maxBody int64) func(*fasthttp.RequestCtx, error) {
	return func(ctx *fasthttp.RequestCtx, err error) {
		status, kind := readError(err)
		reason := "malformed HTTP request: " + err.Error()
		switch status {
		case http.StatusRequestHeaderFieldsTooLarge:
			reason = fmt.Sprintf("request line and headers larger than %d bytes", maxHeaderBytes)
		case http.StatusRequestEntityTooLarge:
			reason = fmt.Sprintf("body larger than %d bytes; send fewer events per request", maxBody)
		case http.StatusRequestTimeout:
			reason = "the request was not received in time"
		}
		if kind == "bare LF" {
			reason = "malformed HTTP request: " + listen.ErrBareLF.Error()
		}
		// The rest of the request may be unread (a body past the bound, a
		// head cut short): close lingering, so the client reads this answer
		// instead of a connection reset.
		listen.Linger(ctx.Conn())
		ctx.Response.Header.Set("Content-Type", "text/plain; charset=utf-8")
		ctx.Response.Header.Set("X-Content-Type-Options", "nosniff")
		ctx.Response.Header.Set("Cache-Control", "no-store")
		ctx.SetStatusCode(status)
		ctx.SetBodyString(reason + "\n")
	}
}

// isHTTP1 reports an HTTP/1.x version: the ones the agent speaks. A later
// 1.x is served as HTTP/1.1 would be (RFC 9110, section 2.5).
func isHTTP1(proto []byte) bool {
	return len(proto) == len("HTTP/1.1") && string(proto[:len("HTTP/1.")]) == "HTTP/1."
}

// answerVersion answers 505 to a request of an HTTP version other than 1.x
// (fasthttp reads any HTTP/d.d as it would HTTP/1.0). The version named is
// fasthttp's checked HTTP/d.d, safe to repeat.
func answerVersion(ctx *fasthttp.RequestCtx) {
	ctx.Response.Header.Set("Content-Type", "text/plain; charset=utf-8")
	ctx.Response.Header.Set("X-Content-Type-Options", "nosniff")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.SetConnectionClose()
	ctx.SetStatusCode(http.StatusHTTPVersionNotSupported)
	ctx.SetBodyString("HTTP version " + string(ctx.Request.Header.Protocol()) + " is not supported; send HTTP/1.1\n")
}

// readError is what went wrong reading a request: the status to answer,
// and its kind for the log, which never holds the error's text (it may
// quote the request).
func readError(err error) (status int, kind string) {
	var small *fasthttp.ErrSmallBuffer
	var netErr net.Error
	switch {
	case errors.As(err, &small):
		return http.StatusRequestHeaderFieldsTooLarge, "headers too large"
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return http.StatusRequestEntityTooLarge, "body too large"
	case errors.As(err, &netErr) && netErr.Timeout():
		return http.StatusRequestTimeout, "timeout"
	case errors.Is(err, listen.ErrBareLF):
		return http.StatusBadRequest, "bare LF"
	}
	return http.StatusBadRequest, fmt.Sprintf("%T", err)
}

// fastLogger passes fasthttp's own messages (a connection that failed, an
// accept error) to the agent's log as warnings without their arguments:
// fasthttp fills them with the client's address and quotes of the request
// (its URL, its headers), personal data that must not reach the logs. The
// format is fasthttp's fixed text; an error argument is logged as its kind.
type fastLogger struct{ log *slog.Logger }

func (l fastLogger) Printf(format string, args ...any) {
	attrs := []slog.Attr{slog.String("format", format)}
	for _, arg := range args {
		if err, ok := arg.(error); ok {
			_, kind := readError(err)
			attrs = append(attrs, slog.String("error", kind))
		}
	}
	l.log.LogAttrs(context.Background(), slog.LevelWarn, "http server", attrs...)
}
