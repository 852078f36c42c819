package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/avila-analytics/avila/agent/collect"
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
		Handler:               handler,
		ErrorHandler:          a.httpError(col.MaxBodyBytes()),
		ReadTimeout:           readTimeout,
		WriteTimeout:          writeTimeout,
		IdleTimeout:           idleTimeout,
		ReadBufferSize:        maxHeaderBytes,
		MaxRequestBodySize:    int(col.MaxBodyBytes()),
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
		status, _ := readError(err)
		reason := "malformed HTTP request: " + err.Error()
		switch status {
		case http.StatusRequestHeaderFieldsTooLarge:
			reason = fmt.Sprintf("request line and headers larger than %d bytes", maxHeaderBytes)
		case http.StatusRequestEntityTooLarge:
			reason = fmt.Sprintf("body larger than %d bytes; send fewer events per request", maxBody)
		case http.StatusRequestTimeout:
			reason = "the request was not received in time"
		}
		ctx.Response.Header.Set("Content-Type", "text/plain; charset=utf-8")
		ctx.Response.Header.Set("X-Content-Type-Options", "nosniff")
		ctx.Response.Header.Set("Cache-Control", "no-store")
		ctx.SetStatusCode(status)
		ctx.SetBodyString(reason + "\n")
	}
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
