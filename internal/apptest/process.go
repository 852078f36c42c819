package apptest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// DefaultReadyTimeout bounds a binary's start-up, until its ready line.
const DefaultReadyTimeout = 90 * time.Second

// Options say what to run.
type Options struct {
	Name string // for messages, e.g. "avila-agent"
	Bin  string // path of the binary
	// Wrap is a command the binary runs under, its arguments included
	// (e.g. prlimit --nofile=256:256); nil: none.
	Wrap    []string
	Args    []string // its arguments
	Env     []string // added to the current environment
	LogPath string   // stderr is appended here
	// ReadyTimeout bounds the wait for the ready line; DefaultReadyTimeout
	// when 0.
	ReadyTimeout time.Duration
}

// Process is a running (or exited) binary.
type Process struct {
	opts Options
	// Ready is the ready line's object, its values as strings.
	Ready map[string]string

	cmd     *exec.Cmd
	exited  chan struct{} // closed once the process has been waited for
	waitErr error
}

// Start runs the binary and waits for its ready line. A binary that exits
// first, or prints no ready line in time, is an error holding the end of
// its log.
func Start(opts Options) (*Process, error) {
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = DefaultReadyTimeout
	}
	p := &Process{opts: opts}
	return p, p.launch()
}

// Restart starts the binary again with the same arguments, after it exited.
func (p *Process) Restart() error {
	if p.Running() {
		return fmt.Errorf("apptest: restart of %s, which still runs", p.opts.Name)
	}
	return p.launch()
}

func (p *Process) launch() error {
	logFile, err := os.OpenFile(p.opts.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("apptest: %s log: %w", p.opts.Name, err)
	}
	cmd := exec.Command(p.opts.Bin, p.opts.Args...)
	if w := p.opts.Wrap; len(w) > 0 {
		cmd = exec.Command(w[0], append(append(w[1:len(w):len(w)], p.opts.Bin), p.opts.Args...)...)
	}
	cmd.Env = append(os.Environ(), p.opts.Env...)
	cmd.Stderr = logFile
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		logFile.Close()
		return fmt.Errorf("apptest: %s: %w", p.opts.Name, err)
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("apptest: start %s: %w", p.opts.Name, err)
	}
	exited := make(chan struct{})
	p.cmd, p.exited, p.waitErr, p.Ready = cmd, exited, nil, nil
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		_, _ = io.Copy(io.Discard, stdout) // anything after the ready line
		p.waitErr = cmd.Wait()
		logFile.Close()
		close(exited)
	}()
	select {
	case line := <-lines:
		if p.Ready, err = ParseReady(line); err != nil {
			p.Kill()
			return fmt.Errorf("apptest: %s: %w", p.opts.Name, err)
		}
		return nil
	case <-exited:
		return fmt.Errorf("apptest: %s exited before it was ready (%v); log %s:\n%s", p.opts.Name, p.waitErr, p.opts.LogPath, Tail(p.opts.LogPath))
	case <-time.After(p.opts.ReadyTimeout):
		p.Kill()
		return fmt.Errorf("apptest: %s not ready after %s; log %s:\n%s", p.opts.Name, p.opts.ReadyTimeout, p.opts.LogPath, Tail(p.opts.LogPath))
	}
}

// ParseReady reads a ready line: a JSON object whose values become strings.
func ParseReady(line string) (map[string]string, error) {
	var raw map[string]any
	if err := json.Unmarshal([]byte(line), &raw); err != nil {
		return nil, fmt.Errorf("ready line %q is not a JSON object: %w", line, err)
	}
	ready := make(map[string]string, len(raw))
	for k, v := range raw {
		ready[k] = fmt.Sprint(v)
	}
	return ready, nil
}

// Name is the name the process was started under.
func (p *Process) Name() string { return p.opts.Name }

// LogPath is where its stderr goes.
func (p *Process) LogPath() string { return p.opts.LogPath }

// Pid is the running process's id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Running reports whether the process has not exited.
func (p *Process) Running() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Err is how the process ended (nil for exit status 0); meaningful once
// it has exited (Running is false).
func (p *Process) Err() error { return p.waitErr }

// Kill sends SIGKILL and waits until the process is gone.
func (p *Process) Kill() {
	if !p.Running() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// Stop sends SIGTERM and waits up to timeout for a clean exit; after that
// it kills the process. An unclean exit is an error.
func (p *Process) Stop(timeout time.Duration) error {
	if !p.Running() {
		return nil
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("apptest: stop %s: %w", p.opts.Name, err)
	}
	select {
	case <-p.exited:
		if p.waitErr != nil {
			return fmt.Errorf("apptest: %s exited uncleanly on SIGTERM: %w; log %s", p.opts.Name, p.waitErr, p.opts.LogPath)
		}
		return nil
	case <-time.After(timeout):
		p.Kill()
		return fmt.Errorf("apptest: %s still ran %s after SIGTERM; killed", p.opts.Name, timeout)
	}
}

// Tail returns the end of a log file, for error messages.
func Tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return string(b)
}

// WaitReady polls GET url (a /readyz) every 100 ms until it answers 200,
// ctx ends or timeout passes; the error then says what it last answered.
func WaitReady(ctx context.Context, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 5 * time.Second}
	var last string
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("apptest: %w", err)
		}
		resp, err := client.Do(req)
		if err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%s: %s", resp.Status, b)
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("apptest: %s not ready after %s (last answer: %s)", url, timeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Cmd is the command of the current run.
func (p *Process) Cmd() *exec.Cmd { return p.cmd }
