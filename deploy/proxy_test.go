package deploy

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// trackerPaths are the agent's public paths that a site's reverse proxy
// forwards (see DESIGN.md, "Wire formats accepted at the edge").
var trackerPaths = []string{"/g/collect", "/mp/collect", "/api/event", "/t.js"}

// agentAddr is where the snippets expect the agent (--listen).
const agentAddr = "127.0.0.1:8090"

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// stripComments drops # comments so that a path named only in a comment
// does not count as proxied.
func stripComments(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if i := strings.Index(l, "#"); i >= 0 {
			l = l[:i]
		}
		b.WriteString(l + "\n")
	}
	return b.String()
}

func TestNginxSnippet(t *testing.T) {
	conf := stripComments(readFile(t, "nginx/avila.conf"))
	locs := regexp.MustCompile(`location\s+(=|~)\s+(\S+)\s*\{([^}]*)\}`).FindAllStringSubmatch(conf, -1)
	if len(locs) == 0 {
		t.Fatal("nginx/avila.conf: no location blocks")
	}
	for _, p := range trackerPaths {
		matched := false
		for _, l := range locs {
			var ok bool
			if l[1] == "=" {
				ok = l[2] == p
			} else {
				ok = regexp.MustCompile(l[2]).MatchString(p)
			}
			if !ok {
				continue
			}
			matched = true
			if !strings.Contains(l[3], "proxy_pass http://"+agentAddr+";") {
				t.Errorf("nginx: location for %s does not proxy_pass to http://%s", p, agentAddr)
			}
			if !strings.Contains(l[3], "X-Forwarded-For") {
				t.Errorf("nginx: location for %s does not pass the client address in X-Forwarded-For", p)
			}
		}
		if !matched {
			t.Errorf("nginx: no location matches %s", p)
		}
	}
	// Prefix lookalikes must stay with the site.
	for _, p := range []string{"/g/collected", "/api/events", "/x/t.js"} {
		for _, l := range locs {
			if l[1] == "~" && regexp.MustCompile(l[2]).MatchString(p) {
				t.Errorf("nginx: %s would go to the agent", p)
			}
		}
	}
}

func TestCaddySnippet(t *testing.T) {
	conf := stripComments(readFile(t, "caddy/Caddyfile"))
	m := regexp.MustCompile(`@(\w+)\s+path\s+([^\n]+)`).FindStringSubmatch(conf)
	if m == nil {
		t.Fatal("caddy/Caddyfile: no path matcher")
	}
	paths := strings.Fields(m[2])
	for _, p := range trackerPaths {
		if !slices.Contains(paths, p) {
			t.Errorf("caddy: matcher @%s does not list %s", m[1], p)
		}
	}
	h := regexp.MustCompile(`handle\s+@` + m[1] + `\s*\{([^}]*)\}`).FindStringSubmatch(conf)
	if h == nil || !strings.Contains(h[1], "reverse_proxy "+agentAddr) {
		t.Errorf("caddy: requests matching @%s are not reverse_proxied to %s", m[1], agentAddr)
	}
}
