package accesslog

import (
	"encoding/hex"
	"fmt"
	"io"

	"github.com/zeebo/blake3"

	"github.com/avila-analytics/avila/agent/privacy"
)

// FileSecret reads r to its end and derives the secret that keys the
// visitor ids of the log it holds: the same bytes give the same secret.
// Hash the file as stored (compressed or not), before reading it.
func FileSecret(r io.Reader) ([privacy.SaltLen]byte, error) {
	var secret [privacy.SaltLen]byte
	h := blake3.New()
	if _, err := io.Copy(h, r); err != nil {
		return secret, fmt.Errorf("accesslog: hash the log: %w", err)
	}
	blake3.DeriveKey("avila import file secret", h.Sum(nil), secret[:])
	return secret, nil
}

// AgentID is the batch key prefix of one file's import into one site:
// "import-<site>-<16 hex digits>". It names no one and reveals nothing of
// the file; a second import of the same file into the same site reuses it,
// so its batches are found committed and not written again.
func AgentID(secret *[privacy.SaltLen]byte, site uint32) string {
	var id [8]byte
	blake3.DeriveKey(fmt.Sprintf("avila import batch key %d", site), secret[:], id[:])
	return fmt.Sprintf("import-%d-%s", site, hex.EncodeToString(id[:]))
}
