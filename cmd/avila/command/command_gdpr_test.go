package command

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/avila-analytics/avila/aggregator/write"
	"github.com/avila-analytics/avila/internal/testenv"
	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/protocol/identity"
	"github.com/avila-analytics/avila/storage/postgres"
)

// TestGDPRExportEraseDecrypt: a subject named by its _ga cookie is
// exported (JSON, CSV, encrypted and decrypted again) and erased with avila;
// afterwards an export finds nothing and says why some visitors cannot be
// found at all.
func TestGDPRExportEraseDecrypt(t *testing.T) {
	ctx := context.Background()
	db := migratedDB(t)
	env := map[string]string{"DATABASE_URL": db, "USER": "dpo"}
	code, stdout, stderr := runCLI(t, env, "site", "create", "--name", "A", "--domain", "a.example")
	if code != 0 {
		t.Fatalf("site create: %d %s", code, stderr)
	}
	prop := fields(t, stdout)["property"]
	id, _ := strconv.ParseUint(prop, 10, 32)
	site := uint32(id)
	store, err := postgres.Open(ctx, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	secret := bytes.Repeat([]byte{9}, identity.SecretLen)
	if err := store.SetIdentitySecret(ctx, site, secret); err != nil {
		t.Fatal(err)
	}
	h, _ := identity.New(site, secret)
	subject := h.Client("111.222")
	now := time.Now().Add(-time.Hour)
	var events []protocol.Event
	for i, v := range []uint64{subject, subject, subject, 77, 78} {
		events = append(events, protocol.Event{Site: site, TimeMicros: now.Add(time.Duration(i) * time.Minute).UnixMicro(), Name: "page_view",
			Visitor: v, Path: "/p" + strconv.Itoa(i), Country: "ES", Flags: protocol.FlagSessionStart})
	}
	if err := store.EnsurePartitions(ctx, now.AddDate(0, 0, -1), now.AddDate(0, 0, 1)); err != nil {
		t.Fatal(err)
	}
	// The test counts the events it sends: no derived session_start or
	// first_visit (a subject's derived events are rows under the same key).
	w := write.New(write.Config{NoDerivedEvents: true}, store)
	if _, err := w.WriteBatch(ctx, "a", 1, events, nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	if code, _, stderr := runCLI(t, env, "gdpr", "export", "--property", prop, "--client-id", "1.2", "--user-id", "u"); code != 2 || !strings.Contains(stderr, "not both") {
		t.Fatalf("both identities: exit %d %s", code, stderr)
	}
	if code, _, stderr := runCLI(t, env, "gdpr", "export", "--property", prop, "--client-id", "not-a-cookie"); code != 2 || !strings.Contains(stderr, "_ga cookie") {
		t.Fatalf("bad cookie: exit %d %s", code, stderr)
	}
	code, stdout, stderr = runCLI(t, env, "gdpr", "export", "--property", prop, "--client-id", "GA1.1.111.222")
	if code != 0 {
		t.Fatalf("export: %d %s", code, stderr)
	}
	var doc struct {
		Events []struct {
			Dims map[string]string `json:"dimensions"`
		} `json:"events"`
		Sessions []json.RawMessage `json:"sessions"`
		Note     string            `json:"note"`
	}
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil || len(doc.Events) != 3 || len(doc.Sessions) == 0 || doc.Note == "" {
		t.Fatalf("export: %v, %d events, %d sessions; want 3 and some: %s", err, len(doc.Events), len(doc.Sessions), stdout)
	}
	code, stdout, _ = runCLI(t, env, "gdpr", "export", "--property", prop, "--client-id", "111.222", "--format", "csv")
	if code != 0 || strings.Count(stdout, "\nevent,") != 3 {
		t.Fatalf("csv export: %d %s", code, stdout)
	}
	dir := t.TempDir()
	pass, enc, dec := filepath.Join(dir, "pass"), filepath.Join(dir, "export.enc"), filepath.Join(dir, "export.json")
	if err := os.WriteFile(pass, []byte("a long enough passphrase\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCLI(t, env, "gdpr", "export", "--property", prop, "--client-id", "111.222", "--encrypt", "--passphrase-file", pass, "--out", enc); code != 0 {
		t.Fatalf("encrypted export: %d %s", code, stderr)
	}
	sealed, _ := os.ReadFile(enc)
	if !bytes.HasPrefix(sealed, []byte("AVILA-ENC-1\n")) || bytes.Contains(sealed, []byte("/p0")) {
		t.Fatal("the encrypted export is not sealed")
	}
	if code, _, stderr := runCLI(t, env, "gdpr", "decrypt", "--in", enc, "--passphrase-file", pass, "--out", dec); code != 0 {
		t.Fatalf("decrypt: %d %s", code, stderr)
	}
	plain, _ := os.ReadFile(dec)
	if !bytes.Contains(plain, []byte(`"page_path": "/p0"`)) {
		t.Fatalf("decrypted export lacks the subject's page: %s", plain)
	}

	code, stdout, stderr = runCLI(t, env, "gdpr", "erase", "--property", prop, "--client-id", "GA1.1.111.222")
	if code != 0 || fields(t, stdout)["events"] != "3" {
		t.Fatalf("erase: %d %s %s", code, stdout, stderr)
	}
	code, stdout, stderr = runCLI(t, env, "gdpr", "erase", "--property", prop, "--client-id", "GA1.1.111.222")
	if code != 0 || fields(t, stdout)["events"] != "0" || !strings.Contains(stderr, "cookieless") {
		t.Fatalf("second erase: %d %s %s", code, stdout, stderr)
	}
	var left int
	if err := testenv.Pool(t, db).QueryRow(ctx, "SELECT count(*) FROM events WHERE site_id = $1", int32(site)).Scan(&left); err != nil || left != 2 {
		t.Fatalf("%d events left (%v), want the other visitors' 2", left, err)
	}
	code, stdout, _ = runCLI(t, env, "audit", "list")
	count := func(actor, action string) int {
		n := 0
		for line := range strings.Lines(stdout) {
			if f := strings.Fields(line); len(f) > 4 && f[3] == actor && f[4] == action {
				n++
			}
		}
		return n
	}
	if code != 0 || count("cli:dpo", "gdpr.export") != 3 || count("cli:dpo", "gdpr.erase") != 2 {
		t.Fatalf("audit list lacks the exports and erasures:\n%s", stdout)
	}
	code, stdout, stderr = runCLI(t, env, "retention", "run", "--dry-run")
	if code != 0 || !strings.Contains(stdout, "retention would remove") {
		t.Fatalf("retention dry run: %d %s %s", code, stdout, stderr)
	}
}
