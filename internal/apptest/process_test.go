package apptest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as the child process: with APPTEST_CHILD set it
// behaves as that variable says instead of running tests.
func TestMain(m *testing.M) {
	switch os.Getenv("APPTEST_CHILD") {
	case "":
		os.Exit(m.Run())
	case "ready":
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM) // before the ready line: a stop may follow it at once
		fmt.Fprintln(os.Stderr, "child starting")
		fmt.Printf(`{"addr":"127.0.0.1:1","pid":%d}`+"\n", os.Getpid())
		<-c
		os.Exit(0)
	case "fail":
		fmt.Fprintln(os.Stderr, "cannot open the database")
		os.Exit(3)
	case "garbage":
		fmt.Println("listening on 127.0.0.1:1")
		time.Sleep(time.Minute)
	}
}

func child(t *testing.T, mode string) Options {
	return Options{Name: "child-" + mode, Bin: os.Args[0], Env: []string{"APPTEST_CHILD=" + mode},
		LogPath: filepath.Join(t.TempDir(), "child.log"), ReadyTimeout: 30 * time.Second}
}

func TestProcessLifecycle(t *testing.T) {
	p, err := Start(child(t, "ready"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Kill()
	if p.Ready["addr"] != "127.0.0.1:1" || p.Ready["pid"] != fmt.Sprint(p.Pid()) {
		t.Fatalf("ready %v, want addr and this pid %d", p.Ready, p.Pid())
	}
	if err := p.Restart(); err == nil {
		t.Fatal("Restart of a running process did not fail")
	}
	first := p.Pid()
	p.Kill()
	if p.Running() || p.Err() == nil {
		t.Fatalf("after Kill: running %v, err %v; want exited by a signal", p.Running(), p.Err())
	}
	if err := p.Restart(); err != nil {
		t.Fatal(err)
	}
	if p.Pid() == first || p.Ready["pid"] != fmt.Sprint(p.Pid()) {
		t.Fatalf("restart: pid %d (was %d), ready %v", p.Pid(), first, p.Ready)
	}
	if err := p.Stop(10 * time.Second); err != nil {
		t.Fatalf("clean stop: %v", err)
	}
	if log := Tail(p.LogPath()); strings.Count(log, "child starting") != 2 {
		t.Fatalf("log %q: want both runs' stderr", log)
	}
}

func TestStartFailures(t *testing.T) {
	_, err := Start(child(t, "fail"))
	if err == nil || !strings.Contains(err.Error(), "exited before it was ready") || !strings.Contains(err.Error(), "cannot open the database") {
		t.Fatalf("child that exits: %v; want the exit and its log", err)
	}
	_, err = Start(child(t, "garbage"))
	if err == nil || !strings.Contains(err.Error(), "is not a JSON object") {
		t.Fatalf("child with a bad ready line: %v", err)
	}
	opts := child(t, "ready")
	opts.Bin = filepath.Join(t.TempDir(), "missing")
	if _, err := Start(opts); err == nil || !strings.Contains(err.Error(), "start child-ready") {
		t.Fatalf("missing binary: %v", err)
	}
}

func TestWaitReady(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 {
			http.Error(w, "not ready: no site config yet", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	}))
	defer srv.Close()
	if err := WaitReady(context.Background(), srv.URL, 10*time.Second); err != nil || calls.Load() != 3 {
		t.Fatalf("WaitReady: %v after %d calls; want ready at the third", err, calls.Load())
	}
	never := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "not ready: draining", http.StatusServiceUnavailable)
	}))
	defer never.Close()
	err := WaitReady(context.Background(), never.URL, 300*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "not ready: draining") {
		t.Fatalf("WaitReady on a server never ready: %v; want its last answer", err)
	}
}
