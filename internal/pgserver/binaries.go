package pgserver

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// ErrNoBinaries means initdb/pg_ctl were found neither on PATH nor in
// Debian's /usr/lib/postgresql/<version>/bin.
var ErrNoBinaries = errors.New("initdb and pg_ctl not found: install PostgreSQL's server package (Debian: apt-get install -y postgresql) or set DATABASE_URL to an existing server")

// findBinDir returns the directory holding initdb and pg_ctl: PATH first,
// else the newest Debian cluster version.
func findBinDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		// A link on PATH (e.g. /usr/local/bin/initdb) points into the
		// directory that holds the rest, such as pg_basebackup.
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "pg_ctl")); err == nil {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return versionOf(b) - versionOf(a) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", ErrNoBinaries
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// runAs is the account the server runs under: nil when the caller is not
// root (the server runs as the caller).
type runAs struct {
	name     string
	uid, gid uint32
}

// serverUser picks the unprivileged account for a root caller.
func serverUser() (*runAs, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		return &runAs{name: name, uid: uint32(uid), gid: uint32(gid)}, nil
	}
	return nil, errors.New("running as root, and neither user postgres nor nobody exists to run PostgreSQL as (create one, run as a normal user, or set DATABASE_URL)")
}

// command builds a command that runs as r when r is set.
func (r *runAs) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	if r != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: r.uid, Gid: r.gid}}
		cmd.Env = append(os.Environ(), "HOME=/tmp")
	}
	cmd.Dir = "/"
	return cmd
}

// prepareDir creates dir and hands it to r. Every parent must be
// searchable by r, or PostgreSQL cannot reach its own files: say which one
// is not rather than letting initdb fail obscurely.
func (r *runAs) prepareDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("pgserver: create %s: %w", dir, err)
	}
	if r == nil {
		return nil
	}
	if err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(r.uid), int(r.gid))
	}); err != nil {
		return fmt.Errorf("pgserver: hand %s to user %s: %w", dir, r.name, err)
	}
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("pgserver: %w", err)
		}
		st, _ := fi.Sys().(*syscall.Stat_t)
		searchable := fi.Mode().Perm()&0o001 != 0 ||
			(st != nil && st.Uid == r.uid && fi.Mode().Perm()&0o100 != 0) ||
			(st != nil && st.Gid == r.gid && fi.Mode().Perm()&0o010 != 0)
		if !searchable {
			return fmt.Errorf("pgserver: PostgreSQL runs as user %s (root may not run it) and cannot reach %s: %s has mode %o; use a data directory under a world-searchable path (chmod o+x %s)",
				r.name, dir, p, fi.Mode().Perm(), p)
		}
		if p == "/" || p == "." {
			return nil
		}
	}
}

// trimOutput shortens a command's output for an error message.
func trimOutput(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 2000 {
		s = "…" + s[len(s)-2000:]
	}
	return s
}
