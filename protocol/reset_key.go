package protocol

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
)

// ResetKeyFile is the file in a data directory holding the server's
// stateless reset key (see ServerOptions.ResetKey).
const ResetKeyFile = "quic-reset.key"

// EnsureResetKey returns the 32-byte stateless reset key kept in dir,
// creating it (mode 0600) on first use so it survives restarts.
func EnsureResetKey(dir string) ([]byte, error) {
	p := filepath.Join(dir, ResetKeyFile)
	if b, err := os.ReadFile(p); err == nil {
		if len(b) != 32 {
			return nil, fmt.Errorf("protocol: reset key %s: want 32 bytes, found %d (delete the file to make a new one)", p, len(b))
		}
		return b, nil
	} else if !os.IsNotExist(err) {
		return nil, fmt.Errorf("protocol: read reset key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("protocol: create %s: %w", dir, err)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("protocol: make reset key: %w", err)
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		return nil, fmt.Errorf("protocol: write reset key: %w", err)
	}
	return b, nil
}
