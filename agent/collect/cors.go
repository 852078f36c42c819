package collect

import "net/http"

// corsMaxAge is how long (seconds) a browser may reuse a preflight answer.
const corsMaxAge = "86400"

// allowOrigin lets the page that sent a hit read the answer, with
// credentials: gtag.js pointed at the agent with transport_url sends
// cross-origin requests that include cookies. Collection answers carry no
// data of their own, so any origin may send.
func allowOrigin(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Credentials", "true")
	h.Add("Vary", "Origin")
}

// preflight answers a CORS preflight (OPTIONS) and reports whether it did.
func preflight(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodOptions {
		return false
	}
	allowOrigin(w, r)
	h := w.Header()
	h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
	if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
		h.Set("Access-Control-Allow-Headers", req)
		h.Add("Vary", "Access-Control-Request-Headers")
	}
	h.Set("Access-Control-Max-Age", corsMaxAge)
	h.Set("Allow", "GET, POST, OPTIONS")
	w.WriteHeader(http.StatusNoContent)
	return true
}
