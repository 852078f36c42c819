package accesslog

import (
	"path"
	"strings"
)

// trackerPaths are requests to Avila's and GA4's collection endpoints: they
// are hits, not page views, and were counted (or not) as such.
var trackerPaths = []string{"/g/collect", "/mp/collect", "/debug/mp/collect", "/api/event", "/t.js"}

// assetExts are extensions of files a page loads rather than pages.
var assetExts = map[string]bool{
	".css": true, ".js": true, ".mjs": true, ".map": true, ".json": true, ".xml": true, ".txt": true,
	".png": true, ".jpg": true, ".jpeg": true, ".gif": true, ".svg": true, ".ico": true, ".webp": true, ".avif": true, ".bmp": true,
	".woff": true, ".woff2": true, ".ttf": true, ".otf": true, ".eot": true,
	".mp4": true, ".webm": true, ".mp3": true, ".ogg": true, ".wav": true, ".m4a": true,
	".pdf": true, ".zip": true, ".gz": true, ".tar": true, ".rss": true, ".atom": true, ".wasm": true,
}

// pageSkip returns why rec is not a page a person loaded, or "".
func pageSkip(rec *Record) string {
	switch {
	case rec.Method != "GET":
		return SkipMethod
	case rec.Status != 200 && rec.Status != 304:
		return SkipStatus
	case !strings.HasPrefix(rec.URI, "/"):
		return SkipMalformed // proxy requests ("GET http://…") and garbage
	}
	p, _, _ := strings.Cut(rec.URI, "?")
	p, _, _ = strings.Cut(p, "#")
	for _, t := range trackerPaths {
		if p == t {
			return SkipTracker
		}
	}
	if strings.HasPrefix(p, "/.well-known/") || assetExts[strings.ToLower(path.Ext(p))] {
		return SkipAsset
	}
	if ct := rec.ContentType; ct != "" {
		mt, _, _ := strings.Cut(ct, ";")
		if mt = strings.TrimSpace(strings.ToLower(mt)); mt != "text/html" && mt != "application/xhtml+xml" {
			return SkipAsset
		}
	}
	return ""
}
