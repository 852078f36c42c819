package tracker

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"net/http"
)

// Path is where the agent serves the script.
const Path = "/t.js"

//go:embed t.js
var script []byte

// Handler serves t.js with a strong ETag, so browsers revalidate cheaply,
// and a short cache lifetime, so an updated agent's script reaches pages
// within the hour. Any origin may load it.
func Handler() http.Handler {
	sum := sha256.Sum256(script)
	etag := `"` + hex.EncodeToString(sum[:8]) + `"`
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "t.js is fetched with GET", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/javascript; charset=utf-8")
		h.Set("Cache-Control", "public, max-age=3600")
		h.Set("ETag", etag)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Access-Control-Allow-Origin", "*")
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(script)
	})
}
