package cli

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"
)

// testValues receive testFlags' flags.
type testValues struct {
	dir   string
	max   int64
	on    bool
	wait  time.Duration
	db    string
	items []string
}

// testFlags declares one flag of each kind the commands use.
func testFlags() (*FlagSet, *testValues) {
	var v testValues
	fs := NewFlagSet("test")
	fs.SetOutput(new(bytes.Buffer))
	fs.StringVar(&v.dir, "data-dir", "./data", "directory")
	fs.Int64Var(&v.max, "queue-max-bytes", 7, "bytes")
	fs.BoolVar(&v.on, "mp-strict", false, "strict")
	fs.DurationVar(&v.wait, "wait", time.Second, "how long")
	fs.StringVar(&v.db, "database-url", "", "PostgreSQL URL")
	fs.SetEnv("database-url", "AVILA_DATABASE_URL", "DATABASE_URL")
	fs.Func("item", "repeatable", func(s string) error { v.items = append(v.items, s); return nil })
	return fs, &v
}

func TestFlagSetEnvFallback(t *testing.T) {
	f := func(args []string, env map[string]string, check func(v *testValues) bool) {
		t.Helper()
		fs, v := testFlags()
		if err := fs.Parse(args, mapEnv(env)); err != nil {
			t.Fatalf("Parse(%q, %v): %v", args, env, err)
		}
		if !check(v) {
			t.Fatalf("Parse(%q, %v): got %+v", args, env, *v)
		}
	}
	// Defaults without environment.
	f(nil, nil, func(v *testValues) bool {
		return v.dir == "./data" && v.max == 7 && !v.on && v.wait == time.Second && v.db == ""
	})
	// Every kind from its AVILA_ variable; numbers and booleans may carry spaces.
	f(nil, map[string]string{"AVILA_DATA_DIR": " /srv ", "AVILA_QUEUE_MAX_BYTES": " 42 ", "AVILA_MP_STRICT": "true",
		"AVILA_WAIT": "5m", "AVILA_ITEM": "a"}, func(v *testValues) bool {
		return v.dir == " /srv " && v.max == 42 && v.on && v.wait == 5*time.Minute && len(v.items) == 1 && v.items[0] == "a"
	})
	// A variable set to empty still wins over the default.
	f(nil, map[string]string{"AVILA_DATA_DIR": ""}, func(v *testValues) bool { return v.dir == "" })
	// The command line wins over the environment.
	f([]string{"--data-dir", "/x", "--item", "b"}, map[string]string{"AVILA_DATA_DIR": "/srv", "AVILA_ITEM": "a"},
		func(v *testValues) bool { return v.dir == "/x" && len(v.items) == 1 && v.items[0] == "b" })
	// SetEnv: the first variable set wins, in the order given.
	f(nil, map[string]string{"DATABASE_URL": "postgres://b"}, func(v *testValues) bool { return v.db == "postgres://b" })
	f(nil, map[string]string{"DATABASE_URL": "postgres://b", "AVILA_DATABASE_URL": "postgres://a"},
		func(v *testValues) bool { return v.db == "postgres://a" })
}

func TestFlagSetEnvCountsAsGiven(t *testing.T) {
	fs, _ := testFlags()
	if err := fs.Parse(nil, mapEnv(map[string]string{"AVILA_MP_STRICT": "false"})); err != nil {
		t.Fatal(err)
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if !given["mp-strict"] || given["data-dir"] {
		t.Fatalf("flags given: %v, want mp-strict only", given)
	}
}

func TestFlagSetEnvErrors(t *testing.T) {
	f := func(env map[string]string, want string) {
		t.Helper()
		fs, _ := testFlags()
		err := fs.Parse(nil, mapEnv(env))
		var envErr *EnvError
		if !errors.As(err, &envErr) || err.Error() != want {
			t.Fatalf("Parse with %v: %v, want %q", env, err, want)
		}
	}
	f(map[string]string{"AVILA_QUEUE_MAX_BYTES": "lots"}, `AVILA_QUEUE_MAX_BYTES="lots": want an integer (it sets --queue-max-bytes)`)
	f(map[string]string{"AVILA_MP_STRICT": "maybe"}, `AVILA_MP_STRICT="maybe": want true or false (it sets --mp-strict)`)
	f(map[string]string{"AVILA_WAIT": "soon"}, `AVILA_WAIT="soon": want a duration such as 30s or 5m (it sets --wait)`)
}

func TestEnvVar(t *testing.T) {
	for flag, want := range map[string]string{"data-dir": "AVILA_DATA_DIR", "ca": "AVILA_CA", "tls-client-ca": "AVILA_TLS_CLIENT_CA"} {
		if got := EnvVar(flag); got != want {
			t.Errorf("EnvVar(%q) = %q, want %q", flag, got, want)
		}
	}
}

// Help names each flag's variables and default; a back-quoted word in a
// usage still names the value, as in flag.PrintDefaults.
func TestFlagSetPrintDefaults(t *testing.T) {
	fs, _ := testFlags()
	fs.String("cert", "", "certificate `FILE` of the agent")
	var out bytes.Buffer
	fs.SetOutput(&out)
	fs.PrintDefaults()
	for _, want := range []string{
		"  -data-dir string\n    \tdirectory (env AVILA_DATA_DIR; default \"./data\")\n",
		"  -queue-max-bytes int\n    \tbytes (env AVILA_QUEUE_MAX_BYTES; default 7)\n",
		"  -mp-strict\n    \tstrict (env AVILA_MP_STRICT)\n",
		"  -wait duration\n    \thow long (env AVILA_WAIT; default 1s)\n",
		"  -database-url string\n    \tPostgreSQL URL (env AVILA_DATABASE_URL, then DATABASE_URL)\n",
		"  -cert FILE\n    \tcertificate FILE of the agent (env AVILA_CERT)\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, out.String())
		}
	}
}
