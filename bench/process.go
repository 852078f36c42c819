package bench

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// readyTimeout bounds a binary's start-up, until its ready line.
const readyTimeout = 90 * time.Second

// process is a binary of the pipeline started by the harness. Its stderr
// goes to a log file; its first stdout line is the JSON ready object.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	ready   map[string]string
	exited  chan struct{} // closed when the process has been waited for
	waitErr error
}

// startProcess runs bin and waits for its ready line.
func startProcess(name, bin, logPath string, args ...string) (*process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("bench: %s log: %w", name, err)
	}
	p := &process{name: name, logPath: logPath, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stderr = logFile
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		logFile.Close()
		return nil, fmt.Errorf("bench: %s: %w", name, err)
	}
	if err := p.cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("bench: start %s: %w", name, err)
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		_, _ = io.Copy(io.Discard, stdout) // anything after the ready line
		p.waitErr = p.cmd.Wait()
		logFile.Close()
		close(p.exited)
	}()
	select {
	case line := <-lines:
		if p.ready, err = parseReady(line); err != nil {
			p.kill()
			return nil, fmt.Errorf("bench: %s: %w", name, err)
		}
		return p, nil
	case <-p.exited:
		return nil, fmt.Errorf("bench: %s exited before it was ready (%v); log %s:\n%s", name, p.waitErr, logPath, tail(logPath))
	case <-time.After(readyTimeout):
		p.kill()
		return nil, fmt.Errorf("bench: %s not ready after %s; log %s:\n%s", name, readyTimeout, logPath, tail(logPath))
	}
}

// parseReady reads a ready line: a JSON object whose values become strings.
func parseReady(line string) (map[string]string, error) {
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

func (p *process) pid() int { return p.cmd.Process.Pid }

// stop asks the process to shut down (SIGTERM) and kills it after timeout.
func (p *process) stop(timeout time.Duration) error {
	select {
	case <-p.exited:
		return nil
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("bench: stop %s: %w", p.name, err)
	}
	select {
	case <-p.exited:
		if p.waitErr != nil {
			return fmt.Errorf("bench: %s exited uncleanly: %w; log %s", p.name, p.waitErr, p.logPath)
		}
		return nil
	case <-time.After(timeout):
		p.kill()
		return fmt.Errorf("bench: %s did not stop within %s after SIGTERM; killed", p.name, timeout)
	}
}

func (p *process) kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// tail returns the end of a log file, for error messages.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
