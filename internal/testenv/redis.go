package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/avila-analytics/avila/internal/freeport"
)

var (
	redisURL  string
	redisErr  error
	redisOnce bool
)

// RedisURL returns the URL of a Redis server: REDIS_URL when set, else a
// throwaway redis-server started at the first call. Tests share it; keep
// keys apart with Prefix.
func RedisURL(t testing.TB) string {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if !redisOnce {
		redisOnce = true
		redisURL, redisErr = startRedis()
	}
	if redisErr != nil {
		t.Fatalf("testenv: %v", redisErr)
	}
	return redisURL
}

func startRedis() (string, error) {
	if env := os.Getenv("REDIS_URL"); env != "" {
		u, err := url.Parse(env)
		if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
			return "", fmt.Errorf("REDIS_URL must be a redis:// URL, got %q", env)
		}
		return env, nil
	}
	addr, cmd, err := launchRedis()
	if err != nil {
		return "", err
	}
	teardown = append(teardown, func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return "redis://" + addr + "/0", nil
}

// OwnRedis starts a redis-server of the test's own, for tests that stop
// Redis under a running system: stop kills it (SIGKILL, as a crash would),
// and is also called when t ends. Calling stop twice is harmless.
func OwnRedis(t testing.TB) (url string, stop func()) {
	t.Helper()
	addr, cmd, err := launchRedis()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
	}
	t.Cleanup(stop)
	return "redis://" + addr + "/0", stop
}

// launchRedis starts redis-server on a free loopback port, without
// persistence, and waits until it answers PING.
func launchRedis() (string, *exec.Cmd, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", nil, errors.New("no REDIS_URL set, and redis-server is not installed: install it (Debian: apt-get install -y redis-server) or set REDIS_URL")
	}
	port, err := freeport.Port()
	if err != nil {
		return "", nil, fmt.Errorf("find a free port for redis-server: %w", err)
	}
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no")
	cmd.Dir = os.TempDir()
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("start redis-server: %w", err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := ping(addr)
		if err == nil {
			return addr, cmd, nil
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return "", nil, fmt.Errorf("redis-server on %s did not answer PING: %w", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ping speaks just enough RESP to see the server answer.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("unexpected answer %q", line)
	}
	return nil
}
