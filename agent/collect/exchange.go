package collect

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/netip"

	"github.com/valyala/fasthttp"
)

// exchange is one collection request and its answer, whichever HTTP server
// carries them: net/http (httpExchange, behind ServeGtag and the other
// http.HandlerFunc methods) or fasthttp (fastExchange, behind FastHandler,
// which the agent's listener uses). The handlers are written once against
// it.
type exchange interface {
	Method() string
	// Query is the raw query string, without the '?'.
	Query() string
	// Header is the first value of the named request header; "" when absent.
	Header(name string) string
	// HeaderValues is every line of the named request header, in order.
	HeaderValues(name string) []string
	// Peer is the TCP peer's address; invalid when unknown.
	Peer() netip.Addr
	// ContentLength is the declared body length; -1 when unknown.
	ContentLength() int64
	// Body reads the whole body; errBodyTooLarge past limit bytes.
	Body(limit int64) ([]byte, error)
	// Context ends when the request no longer needs an answer.
	Context() context.Context
	SetHeader(name, value string)
	AddHeader(name, value string)
	// Answer writes the status and, when not nil, body. Call it once.
	Answer(status int, body []byte)
}

// errBodyTooLarge is Body's error for a body past its limit.
var errBodyTooLarge = errors.New("body too large")

// httpExchange is a net/http request and its ResponseWriter.
type httpExchange struct {
	w http.ResponseWriter
	r *http.Request
}

func (x httpExchange) Method() string                    { return x.r.Method }
func (x httpExchange) Query() string                     { return x.r.URL.RawQuery }
func (x httpExchange) Header(name string) string         { return x.r.Header.Get(name) }
func (x httpExchange) HeaderValues(name string) []string { return x.r.Header.Values(name) }
func (x httpExchange) Peer() netip.Addr                  { return peerIP(x.r.RemoteAddr) }
func (x httpExchange) ContentLength() int64              { return x.r.ContentLength }
func (x httpExchange) Context() context.Context          { return x.r.Context() }
func (x httpExchange) SetHeader(name, value string)      { x.w.Header().Set(name, value) }
func (x httpExchange) AddHeader(name, value string)      { x.w.Header().Add(name, value) }

func (x httpExchange) Body(limit int64) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(x.w, x.r.Body, limit))
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return nil, errBodyTooLarge
	}
	return body, err
}

func (x httpExchange) Answer(status int, body []byte) {
	x.w.WriteHeader(status)
	if body != nil {
		_, _ = x.w.Write(body)
	}
}

// fastExchange is a fasthttp request context. fasthttp has read the whole
// body (up to the server's MaxRequestBodySize) before the handler runs.
type fastExchange struct {
	ctx *fasthttp.RequestCtx
}

func (x fastExchange) Method() string { return string(x.ctx.Method()) }
func (x fastExchange) Query() string  { return string(x.ctx.URI().QueryString()) }
func (x fastExchange) Header(name string) string {
	return string(x.ctx.Request.Header.Peek(name))
}

func (x fastExchange) HeaderValues(name string) []string {
	all := x.ctx.Request.Header.PeekAll(name)
	if len(all) == 0 {
		return nil
	}
	out := make([]string, len(all))
	for i, v := range all {
		out[i] = string(v)
	}
	return out
}

func (x fastExchange) Peer() netip.Addr {
	if a, ok := x.ctx.RemoteAddr().(interface{ AddrPort() netip.AddrPort }); ok {
		return a.AddrPort().Addr().Unmap()
	}
	return peerIP(x.ctx.RemoteAddr().String())
}

func (x fastExchange) ContentLength() int64 {
	if n := x.ctx.Request.Header.ContentLength(); n >= 0 {
		return int64(n)
	}
	return -1
}

func (x fastExchange) Body(limit int64) ([]byte, error) {
	body := x.ctx.PostBody()
	if int64(len(body)) > limit {
		return nil, errBodyTooLarge
	}
	return body, nil
}

// Context is not the RequestCtx itself: that one is done as soon as the
// server starts shutting down, while a request in progress is still
// answered then (the agent stops the server before it closes the queue).
func (x fastExchange) Context() context.Context { return context.Background() }

func (x fastExchange) SetHeader(name, value string) { x.ctx.Response.Header.Set(name, value) }
func (x fastExchange) AddHeader(name, value string) { x.ctx.Response.Header.Add(name, value) }

func (x fastExchange) Answer(status int, body []byte) {
	x.ctx.SetStatusCode(status)
	if body != nil {
		x.ctx.SetBody(body)
	}
}
