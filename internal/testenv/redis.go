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
	"testing"
	"time"
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
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", errors.New("no REDIS_URL set, and redis-server is not installed: install it (Debian: apt-get install -y redis-server) or set REDIS_URL")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port for redis-server: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no")
	cmd.Dir = os.TempDir()
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start redis-server: %w", err)
	}
	teardown = append(teardown, func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := ping(addr); err == nil {
			return "redis://" + addr + "/0", nil
		} else if time.Now().After(deadline) {
			return "", fmt.Errorf("redis-server on %s did not answer PING: %w", addr, err)
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
