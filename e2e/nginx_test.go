package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/avila-analytics/avila/internal/testenv"
)

// Addresses of the nginx test, all on the loopback network so no traffic
// leaves the machine. nginx connects to the agent from proxyIP, the one
// trusted proxy; browsers come from visitorIP (through nginx) or directIP
// (straight to the agent); forgedIP is what a forger claims to be.
const (
	proxyIP   = "127.0.0.2"
	visitorIP = "127.45.67.89"
	directIP  = "127.88.0.1"
	forgedIP  = "81.2.69.142"
)

// TestNginxForwardsClientAddress runs a real nginx in front of the agent
// (--trusted-proxies names nginx's address): geo comes from the address
// nginx forwards, and an X-Forwarded-For sent by anyone else, or put in
// front of nginx's entry, is not believed.
func TestNginxForwardsClientAddress(t *testing.T) {
	s := newStack(t, testenv.PostgresURL(t))
	geoDB := writeGeoDB(t, map[string][3]string{
		"127.45.67.0/24": {"NZ", "Wellington", "Probeville"},
		"127.88.0.0/24":  {"DE", "Berlin", "Directville"},
		"81.2.69.0/24":   {"GB", "England", "London"},
	})
	// The stack's agent trusts nobody; this one trusts nginx only.
	s.agent.stop()
	s.agent = start(t, "avila-agent", nil,
		"--listen", freePort(t, "tcp"), "--data-dir", filepath.Join(t.TempDir(), "agent"),
		"--aggregator", s.agg.ready["quic"], "--ca", s.ca,
		"--trusted-proxies", proxyIP+"/32", "--geoip-db", geoDB)
	s.waitAgentReady()
	agentURL := s.agent.ready["agent"]
	nginxURL := startNginx(t, strings.TrimPrefix(agentURL, "http://"))

	f := func(base, from, xff, path string) {
		t.Helper()
		u := strings.Replace(s.hitURL(0), agentURL, base, 1)
		u = strings.Replace(u, "%2Fp%2F0", "%2Fnginx%2F"+path, 1)
		code, body := getFrom(t, from, u, xff)
		if code != http.StatusNoContent {
			t.Fatalf("%s from %s: %d %q", path, from, code, body)
		}
	}
	f(nginxURL, visitorIP, "", "forwarded")
	f(nginxURL, visitorIP, forgedIP, "forged-behind-nginx")
	f(agentURL, directIP, forgedIP, "forged-direct")

	want := map[string]string{
		"/nginx/forwarded":           "NZ/Wellington/Probeville",
		"/nginx/forged-behind-nginx": "NZ/Wellington/Probeville",
		"/nginx/forged-direct":       "DE/Berlin/Directville",
	}
	eventually(t, time.Minute, "geo of the proxied hits stored", func() error {
		got, err := storedGeo(s)
		if err != nil {
			return err
		}
		for path, g := range want {
			if got[path] != g {
				return fmt.Errorf("%s stored with geo %q, want %q (all: %v)", path, got[path], g, got)
			}
		}
		return nil
	})
}

// storedGeo returns country/region/city of each stored /nginx/ page.
func storedGeo(s *stack) (map[string]string, error) {
	rows, err := s.db.Query(context.Background(), `
		SELECT p.value, coalesce(c.value, ''), coalesce(r.value, ''), coalesce(ci.value, '')
		FROM events e JOIN content_profiles cn ON cn.id = e.content_id JOIN dims p ON p.id = cn.page_id
		LEFT JOIN client_profiles cp ON cp.id = e.client_id
		LEFT JOIN dims c ON c.id = cp.country_id LEFT JOIN dims r ON r.id = cp.region_id LEFT JOIN dims ci ON ci.id = cp.city_id
		WHERE e.site_id = $1 AND p.value LIKE '/nginx/%' AND e.flags & 256 = 0`, int32(s.site.ID))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var path, country, region, city string
		if err := rows.Scan(&path, &country, &region, &city); err != nil {
			return nil, err
		}
		out[path] = country + "/" + region + "/" + city
	}
	return out, rows.Err()
}

// getFrom sends a GET from the local address from, with an
// X-Forwarded-For header when xff is set.
func getFrom(t *testing.T, from, u, xff string) (int, string) {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("User-Agent", browserUA)
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	resp, err := (&http.Client{Transport: tr, Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b := make([]byte, 512)
	n, _ := resp.Body.Read(b)
	return resp.StatusCode, string(b[:n])
}

// startNginx runs the Debian nginx in the foreground with a config of its
// own, proxying the tracker path to agent (host:port) from proxyIP the way
// deploy/ suggests, and returns its URL.
func startNginx(t *testing.T, agent string) string {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/nginx"); serr != nil {
			t.Fatal("nginx not found: install it (Debian: apt-get install -y nginx); .ci/run does")
		}
		bin = "/usr/sbin/nginx"
	}
	dir := t.TempDir()
	addr := freePort(t, "tcp")
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // workers must reach the temp dir, which only root can
	}
	conf := fmt.Sprintf(`%s
daemon off;
worker_processes 1;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
events { worker_connections 64; }
http {
	access_log off;
	client_body_temp_path %[2]s/body;
	proxy_temp_path %[2]s/proxy;
	fastcgi_temp_path %[2]s/fastcgi;
	uwsgi_temp_path %[2]s/uwsgi;
	scgi_temp_path %[2]s/scgi;
	server {
		listen %[3]s;
		location = /g/collect {
			proxy_pass http://%[4]s;
			proxy_bind %[5]s;
			proxy_set_header Host $host;
			proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
		}
	}
}
`, user, dir, addr, agent, proxyIP)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", confPath)
	out, err := os.Create(filepath.Join(dir, "stderr.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			for _, f := range []string{"stderr.log", "error.log"} {
				b, _ := os.ReadFile(filepath.Join(dir, f))
				t.Logf("--- nginx %s:\n%s", f, b)
			}
		}
	})
	eventually(t, 30*time.Second, "nginx listening", func() error {
		select {
		case err := <-exited:
			exited <- err
			return fmt.Errorf("nginx exited: %v", err)
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	})
	return "http://" + addr
}

// writeGeoDB writes a MaxMind-format City database: prefix → country code,
// region and city names.
func writeGeoDB(t *testing.T, nets map[string][3]string) string {
	t.Helper()
	w, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "Avila-Test-City", RecordSize: 24, IncludeReservedNetworks: true})
	if err != nil {
		t.Fatal(err)
	}
	names := func(en string) mmdbtype.Map { return mmdbtype.Map{"en": mmdbtype.String(en)} }
	for cidr, g := range nets {
		_, n, err := net.ParseCIDR(cidr)
		if err != nil {
			t.Fatal(err)
		}
		err = w.Insert(n, mmdbtype.Map{
			"country":      mmdbtype.Map{"iso_code": mmdbtype.String(g[0])},
			"subdivisions": mmdbtype.Slice{mmdbtype.Map{"names": names(g[1])}},
			"city":         mmdbtype.Map{"names": names(g[2])},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "city.mmdb")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteTo(f); err != nil {
		_ = f.Close()
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}
