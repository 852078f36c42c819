package web

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed static
var static embed.FS

// contentSecurityPolicy allows the page to load only its own files and to
// talk only to the server it came from (the Data API and the realtime
// WebSocket are on the same origin).
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Handler serves the dashboard's files. Only GET and HEAD are answered; a
// path that names no file is a 404, so a mistyped API path under "/" is not
// answered with the dashboard's page.
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		// The directory is embedded at build time; it cannot be missing.
		panic("web: BUG: embedded static directory missing: " + err.Error())
	}
	files := http.FileServer(http.FS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed: the dashboard answers GET and HEAD", http.StatusMethodNotAllowed)
			return
		}
		if r.URL.Path != "/" && !exists(sub, strings.TrimPrefix(r.URL.Path, "/")) {
			http.Error(w, "not found: "+r.URL.Path, http.StatusNotFound)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		// The files are small and change with the binary; revalidate each
		// time so an upgraded aggregator never serves a stale mix.
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}

// exists reports whether name is a regular file in fsys.
func exists(fsys fs.FS, name string) bool {
	st, err := fs.Stat(fsys, name)
	return err == nil && !st.IsDir()
}
