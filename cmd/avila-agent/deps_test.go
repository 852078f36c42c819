package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The agent runs beside every web server and stays small: it links none of
// the aggregator's storage and cluster libraries (DESIGN.md, layout).
func TestAgentLinksNoServerLibraries(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 50 {
		t.Fatalf("go list -deps listed %d packages; expected the agent's whole dependency graph", len(deps))
	}
	for _, forbidden := range []string{"github.com/jackc/pgx", "github.com/redis/go-redis", "github.com/hashicorp/memberlist"} {
		for _, d := range deps {
			if strings.HasPrefix(d, forbidden) {
				t.Errorf("the agent links %s", d)
			}
		}
	}
}
