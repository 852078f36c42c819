package node

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// API server defaults (see Config).
const (
	DefaultReportTimeout   = 30 * time.Second
	DefaultReportConns     = 4
	DefaultPropertyConns   = 2
	DefaultAPIReadTimeout  = 15 * time.Second
	DefaultAPIWriteTimeout = 45 * time.Second
	DefaultAPIIdleTimeout  = 60 * time.Second
	apiReadHeaderTimeout   = 10 * time.Second
)

// withDefaults fills cfg's zero API and report settings.
func withDefaults(cfg Config) Config {
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&cfg.APIReadTimeout, DefaultAPIReadTimeout},
		{&cfg.APIWriteTimeout, DefaultAPIWriteTimeout}, {&cfg.APIIdleTimeout, DefaultAPIIdleTimeout}, {&cfg.ReportTimeout, DefaultReportTimeout}} {
		if *d.v <= 0 {
			*d.v = d.def
		}
	}
	if cfg.ReportConns <= 0 {
		cfg.ReportConns = DefaultReportConns
	}
	if cfg.PropertyConns <= 0 {
		cfg.PropertyConns = DefaultPropertyConns
	}
	return cfg
}

// bodyLimit bounds the request body read ahead of the Data API (the API
// answers bodies over 1 MiB 400 itself).
const bodyLimit = 1<<20 + 1

// newAPIServer is the HTTP server of the API address: its timeouts cut a
// client that sends its head or body too slowly (with or without a key),
// one that reads the answer too slowly, and an idle keep-alive
// connection. A hijacked connection (the realtime WebSocket) has its
// deadlines cleared by net/http and keeps its own.
func newAPIServer(cfg Config, h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: min(apiReadHeaderTimeout, cfg.APIReadTimeout),
		ReadTimeout: cfg.APIReadTimeout, WriteTimeout: cfg.APIWriteTimeout, IdleTimeout: cfg.APIIdleTimeout,
		Protocols: apiProtocols()}
}

// readBody reads a Data API request's body before the API sees it, so a
// body that cannot be read is answered here: a malformed chunked encoding
// (or any other broken framing) is 400 INVALID_ARGUMENT, a body cut by the
// read timeout 408, in Google's error shape; never a 500. gRPC requests
// stream their messages and pass untouched; so do bodyless requests.
func readBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody || strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			next.ServeHTTP(w, r)
			return
		}
		buf, err := io.ReadAll(io.LimitReader(r.Body, bodyLimit))
		if err != nil {
			var ne net.Error
			switch {
			case r.Context().Err() != nil:
				return // the client went; nobody reads an answer
			case errors.As(err, &ne) && ne.Timeout():
				w.Header().Set("Connection", "close")
				writeAPIError(w, http.StatusRequestTimeout, "DEADLINE_EXCEEDED", "The request body did not arrive within the server's read timeout.")
			default:
				w.Header().Set("Connection", "close")
				writeAPIError(w, http.StatusBadRequest, "INVALID_ARGUMENT", fmt.Sprintf("The request body could not be read: %v.", err))
			}
			return
		}
		// The API's own limit applies to what is left, if anything.
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(buf), r.Body), r.Body}
		next.ServeHTTP(w, r)
	})
}

// writeAPIError answers in Google's error JSON, as the Data API does.
func writeAPIError(w http.ResponseWriter, code int, status, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	var body struct {
		Error struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
			Status  string `json:"status"`
		} `json:"error"`
	}
	body.Error.Code, body.Error.Message, body.Error.Status = code, msg, status
	_ = json.NewEncoder(w).Encode(&body)
}
