package collect

import "net/http"

// corsMaxAge is how long (seconds) a browser may reuse a preflight answer.
const corsMaxAge = "86400"

// allowOrigin lets the page that sent a hit read the answer, with
// credentials: gtag.js pointed at the agent with transport_url sends
// cross-origin requests that include cookies. Collection answers carry no
// data of their own, so any origin may send.
func allowOrigin(x exchange) {
	origin := x.Header("Origin")
	if origin == "" {
		return
	}
	x.SetHeader("Access-Control-Allow-Origin", origin)
	x.SetHeader("Access-Control-Allow-Credentials", "true")
	x.AddHeader("Vary", "Origin")
}

// preflight answers a CORS preflight (OPTIONS) and reports whether it did.
func preflight(x exchange) bool {
	if x.Method() != http.MethodOptions {
		return false
	}
	allowOrigin(x)
	x.SetHeader("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
	if req := x.Header("Access-Control-Request-Headers"); req != "" {
		x.SetHeader("Access-Control-Allow-Headers", req)
		x.AddHeader("Vary", "Access-Control-Request-Headers")
	}
	x.SetHeader("Access-Control-Max-Age", corsMaxAge)
	x.SetHeader("Allow", "GET, POST, OPTIONS")
	x.Answer(http.StatusNoContent, nil)
	return true
}
