// Package httplog gives HTTP requests ids and logs them: the id goes into
// the request's context, the X-Request-Id answer header and every log record
// made with that context. Used by the agent and the aggregator's API.
package httplog

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// Header carries a request's id back to the sender, so a failed
// hit can be found in the agent's logs.
const Header = "X-Request-Id"

type requestIDKey struct{}

// IDs makes request ids: a random per-process prefix and a counter,
// unique without a random read per request. Safe for concurrent use.
type IDs struct {
	prefix string
	n      atomic.Uint64
}

// NewIDs starts a sequence of request ids with a fresh random prefix.
func NewIDs() *IDs {
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return &IDs{prefix: hex.EncodeToString(b[:]) + "-"}
}

// Next is the next request id.
func (g *IDs) Next() string {
	return g.prefix + strconv.FormatUint(g.n.Add(1), 36)
}

// RequestID is the id of the request ctx belongs to; "" outside one.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// Handler gives every request an id (in its context and in the
// X-Request-Id answer header) and, at debug level, logs one record per
// request with the id, method, path, status and duration. The record never
// holds the query string, the client address or the user agent: they carry
// visitor data (page URLs, IPs) that must not reach the logs.
func Handler(log *slog.Logger, next http.Handler) http.Handler {
	return HandlerIDs(log, NewIDs(), next)
}

// HandlerIDs is Handler with the ids taken from ids, for a server that
// gives some of its requests ids elsewhere from the same sequence.
func HandlerIDs(log *slog.Logger, ids *IDs, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := ids.Next()
		w.Header().Set(Header, id)
		r = r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id))
		if !log.Enabled(r.Context(), slog.LevelDebug) {
			next.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		log.LogAttrs(r.Context(), slog.LevelDebug, "request",
			slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", sw.status), slog.Duration("took", time.Since(start)))
	})
}

// statusWriter remembers the status a handler answered.
type statusWriter struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.status, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush sends buffered data to the client, for streaming handlers (gRPC
// over HTTP/2 needs a ResponseWriter that is an http.Flusher).
func (w *statusWriter) Flush() {
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// ContextLogger returns log with records made with a request's context
// carrying its id as "request".
func ContextLogger(log *slog.Logger) *slog.Logger {
	return slog.New(contextHandler{log.Handler()})
}

// contextHandler adds the request id of a record's context as "request".
type contextHandler struct{ slog.Handler }

func (h contextHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestID(ctx); id != "" {
		r.AddAttrs(slog.String("request", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h contextHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return contextHandler{h.Handler.WithAttrs(attrs)}
}

func (h contextHandler) WithGroup(name string) slog.Handler {
	return contextHandler{h.Handler.WithGroup(name)}
}
