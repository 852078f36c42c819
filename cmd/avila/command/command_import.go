package command

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/avila-analytics/avila/agent/accesslog"
	"github.com/avila-analytics/avila/agent/collect"
	"github.com/avila-analytics/avila/agent/enrich"
	shared "github.com/avila-analytics/avila/internal/cli"
	"github.com/avila-analytics/avila/protocol"
)

func importCommand() command {
	return command{
		name: "import",
		args: "FILE...",
		summary: "Import a web server's access logs (plain or .gz) as page views of a property, through an aggregator.\n" +
			"Lines go through the agent's rules: only pages people loaded (GET, 200/304, no assets, no bots),\n" +
			"URLs scrubbed, visitors cookieless; addresses and user agents are used in memory only. Importing\n" +
			"a file again stores nothing twice. Example:\n" +
			"  avila import --property 1 --format nginx --ca data/aggregator/tls/ca.pem /var/log/nginx/access.log.1.gz",
		flags: func(c *cli, fs *shared.FlagSet) func(context.Context) error {
			property := fs.String("property", "", "property (site) id the page views belong to")
			format := fs.String("format", "combined",
				"line format: combined (Apache and nginx's default), nginx (combined plus nginx's \"$http_x_forwarded_for\" column)\n"+
					"or caddy (Caddy's JSON access log)")
			aggregator := fs.String("aggregator", "127.0.0.1:4433", "QUIC address of an aggregator (its --listen-quic)")
			ca := fs.String("ca", "", "PEM CA that signed the aggregators' certificates, as for avila-agent --ca")
			cert := fs.String("cert", "", "client certificate, for aggregators that require one (--tls-client-ca)")
			key := fs.String("key", "", "private key of --cert")
			host := fs.String("host", "", "host name of the logged pages, for formats that do not log it; default: the site's first domain")
			scheme := fs.String("scheme", "https", "scheme of the logged pages' URLs: https or http")
			trusted := fs.String("trusted-proxies", "",
				"comma-separated CIDR prefixes or addresses of reverse proxies whose logged X-Forwarded-For names the client\n"+
					"(nginx format), as for avila-agent --trusted-proxies")
			geoDB := fs.String("geoip-db", "",
				"MaxMind-format .mmdb for country, region and city; without it countries come from the built-in table")
			dryRun := fs.Bool("dry-run", false, "read the files and count what would be imported, without sending anything")
			logger := c.logFlags(fs, "warn")
			return func(ctx context.Context) error {
				log, err := logger()
				if err != nil {
					return usageError{err.Error()}
				}
				site, err := strconv.ParseUint(*property, 10, 31)
				switch {
				case *property == "":
					return usagef("--property is required: the id of the site to import into (avila site list)")
				case err != nil || site == 0:
					return usagef("--property %q: want a property id (a positive integer, see avila site list)", *property)
				case fs.NArg() == 0:
					return usagef("name the access log files to import, e.g. avila import --property %s access.log.1.gz", *property)
				case *ca == "":
					return usagef("--ca is required: the CA of the aggregators' certificates (the development aggregator prints it as ca)")
				case *scheme != "https" && *scheme != "http":
					return usagef("--scheme %q: want https or http", *scheme)
				}
				f, err := accesslog.ParseFormat(*format)
				if err != nil {
					return usagef("--format %q: want combined, nginx or caddy", *format)
				}
				proxies, err := collect.ParseTrustedProxies(*trusted)
				if err != nil {
					return usagef("--trusted-proxies: %v", err)
				}
				tlsConf, err := protocol.ClientTLS(*ca, *cert, *key)
				if err != nil {
					return fmt.Errorf("TLS: %w", err)
				}
				en, err := enrich.New(enrich.Config{GeoIPDB: *geoDB})
				if err != nil {
					return err
				}
				defer en.Close()
				client := protocol.NewClient(*aggregator, tlsConf)
				defer client.Close()
				im := importer{
					c: c, client: client, site: uint32(site), dryRun: *dryRun,
					opts: accesslog.Options{Format: f, Host: *host, Scheme: *scheme, TrustedProxies: proxies, Enricher: en},
				}
				for _, path := range fs.Args() {
					if err := im.file(ctx, path); err != nil {
						return err
					}
				}
				log.Debug("import done", "files", fs.NArg())
				return nil
			}
		},
	}
}

// importer imports files one after the other into one site.
type importer struct {
	c      *cli
	client *protocol.Client
	site   uint32
	dryRun bool
	opts   accesslog.Options
}

// file imports one access log.
func (im *importer) file(ctx context.Context, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	if st.IsDir() {
		return fmt.Errorf("open %s: a directory, not an access log", path)
	}
	secret, err := accesslog.FileSecret(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("%s: rewind: %w", path, err)
	}
	agentID := accesslog.AgentID(&secret, im.site)
	cfg, err := im.client.FetchConfig(ctx, protocol.ConfigRequest{AgentID: agentID})
	if err != nil {
		return fmt.Errorf("ask the aggregator at %s for the site: %w (is it running? see --aggregator and --ca)", im.client.Addr(), err)
	}
	var site *protocol.Site
	for i := range cfg.Sites {
		if cfg.Sites[i].ID == im.site {
			site = &cfg.Sites[i]
		}
	}
	if site == nil {
		return usagef("--property %d: the aggregator has no such site (avila site list)", im.site)
	}
	counted := &countingReader{r: f}
	in, err := decompress(bufio.NewReaderSize(counted, 1<<20), path)
	if err != nil {
		return err
	}
	opts := im.opts
	opts.Site, opts.Secret = site, secret
	rd, err := accesslog.NewReader(in, opts)
	if err != nil {
		return usagef("%v (--host)", err)
	}
	bar := newProgressBar(im.c.stderr, path, st.Size(), &counted.n)
	start := time.Now()
	var p accesslog.Progress
	if im.dryRun {
		p, err = countOnly(rd, bar)
	} else {
		p, err = accesslog.Ship(ctx, rd, im.client, accesslog.ShipOptions{
			AgentID: agentID, OnProgress: bar.update,
		})
	}
	bar.finish(p)
	if err != nil {
		return fmt.Errorf("%s: %w (run the same command again to go on: what was stored is not stored twice)", path, err)
	}
	fmt.Fprintln(im.c.stdout, summary(path, p, rd.Stats(), time.Since(start), im.dryRun))
	return nil
}

// countOnly reads every batch without sending it (--dry-run).
func countOnly(rd *accesslog.Reader, bar *progressBar) (accesslog.Progress, error) {
	var p accesslog.Progress
	for {
		_, err := rd.Next()
		st := rd.Stats()
		p.Lines, p.PageViews = st.Lines, st.PageViews
		if errors.Is(err, io.EOF) {
			return p, nil
		}
		if err != nil {
			return p, err
		}
		bar.update(p)
	}
}

// decompress returns the log's lines: gunzipped when the file starts with
// gzip's magic bytes, whatever its name.
func decompress(r *bufio.Reader, path string) (io.Reader, error) {
	magic, err := r.Peek(2)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if !bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		return r, nil
	}
	z, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("read %s: not a valid gzip file: %w", path, err)
	}
	return z, nil
}

// summary is the line printed per imported file.
func summary(path string, p accesslog.Progress, st accesslog.Stats, took time.Duration, dryRun bool) string {
	var b strings.Builder
	rate := float64(p.Lines) / max(took.Seconds(), 1e-9)
	if dryRun {
		fmt.Fprintf(&b, "%s: %d lines, %d page views would be imported (dry run, nothing sent); %.0f lines/s", path, p.Lines, p.PageViews, rate)
	} else {
		fmt.Fprintf(&b, "%s: %d lines, %d page views: %d stored now, %d stored by an earlier run; %.0f lines/s", path, p.Lines, p.PageViews, p.Stored, p.Already, rate)
	}
	var skipped []string
	for _, reason := range []string{accesslog.SkipMethod, accesslog.SkipStatus, accesslog.SkipAsset, accesslog.SkipTracker,
		accesslog.SkipOtherHost, accesslog.SkipBot, accesslog.SkipTime, accesslog.SkipInvalid, accesslog.SkipMalformed} {
		if n := st.Skipped[reason]; n > 0 {
			skipped = append(skipped, fmt.Sprintf("%s %d", reason, n))
		}
	}
	if len(skipped) > 0 {
		fmt.Fprintf(&b, "; skipped: %s", strings.Join(skipped, ", "))
	}
	return b.String()
}

// countingReader counts the bytes read from the file, for progress.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}
