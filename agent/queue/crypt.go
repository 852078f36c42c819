package queue

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
)

// Every value the queue stores, except the agent id and the key check, is
// sealed with AES-256-GCM under the queue key: a 12-byte nonce of its own
// (see nonceSource), then the ciphertext with its 16-byte tag. The additional data
// binds a value to where it belongs (a segment to its seq, a meta value to
// its name), so values moved between keys do not open.
const (
	keyBytes     = 32 // AES-256
	nonceBytes   = 12
	sealOverhead = nonceBytes + 16
)

// ErrWrongKey: the key file does not open the queue's key check value, so
// it is not the key the queue was encrypted with. Nothing was changed.
var ErrWrongKey = errors.New("queue key does not match the queue file")

// keyCheckPlain is sealed under the key in the meta bucket at creation;
// opening it at start tells a wrong key from a corrupt value.
var (
	keyCheck      = []byte("key_check")
	keyCheckPlain = []byte("avila queue key check v1")
	aadPending    = []byte("pending")
)

type sealer struct {
	aead   cipher.AEAD
	nonces *nonceSource
}

func newSealer(key []byte) (*sealer, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead, nonces: newNonceSource(readRandom)}, nil
}

// seal returns nonce || ciphertext || tag of plain.
func (s *sealer) seal(plain, aad []byte) []byte {
	return s.sealAppend(nil, plain, aad)
}

// sealAppend appends what seal returns to dst.
func (s *sealer) sealAppend(dst, plain, aad []byte) []byte {
	var nonce [nonceBytes]byte
	s.nonces.fill(nonce[:])
	return s.sealNonce(dst, nonce[:], plain, aad)
}

// readRandom fills b from the system's randomness.
func readRandom(b []byte) {
	// crypto/rand.Read never fails and always fills the slice (Go 1.24+).
	_, _ = rand.Read(b)
}

// nonceBlock is how many nonces a nonceSource hands out from one draw of
// randomness: every value of the 32-bit counter once.
const nonceBlock = 1 << 32

// nonceSource hands out the queue's GCM nonces. It draws 12 random bytes,
// then makes nonces from them by adding 0, 1, 2 … (mod 2^32) to their last
// four bytes, read as a big-endian counter; after nonceBlock nonces it
// draws again. So the nonces of one draw never repeat (they differ in the
// counter), and two draws repeat a nonce only if their first eight bytes
// are equal and their counter ranges overlap: for draws of n1 and n2
// nonces, probability (n1+n2)/2^96 at most, which summed over all pairs
// of draws stays below what one random nonce per value risks for as many
// values (n²/2^97), while reading the randomness once per 2^32 values
// instead of once per request: the system's random source cost an agent
// more than sealing its events did (about 0.4 µs a read plus 20 ns a byte).
// Safe for concurrent use.
type nonceSource struct {
	mu     sync.Mutex
	random func([]byte) // readRandom; tests count the draws
	block  uint64       // nonceBlock; tests lower it
	base   [nonceBytes]byte
	used   uint64 // nonces handed out since base was drawn
}

func newNonceSource(random func([]byte)) *nonceSource {
	s := &nonceSource{random: random, block: nonceBlock}
	s.draw()
	return s
}

// draw takes new random bytes for the nonces that follow.
func (s *nonceSource) draw() {
	s.random(s.base[:])
	s.used = 0
}

// fill writes len(b)/nonceBytes nonces one after another into b.
func (s *nonceSource) fill(b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ; len(b) >= nonceBytes; b = b[nonceBytes:] {
		if s.used == s.block {
			s.draw()
		}
		copy(b[:nonceBytes-4], s.base[:nonceBytes-4])
		ctr := binary.BigEndian.Uint32(s.base[nonceBytes-4:]) + uint32(s.used)
		binary.BigEndian.PutUint32(b[nonceBytes-4:], ctr)
		s.used++
	}
}

// sealNonce is sealAppend with the nonce given: the first nonceBytes of
// nonce, from the sealer's nonceSource and never used before.
func (s *sealer) sealNonce(dst, nonce, plain, aad []byte) []byte {
	dst = slices.Grow(dst, sealOverhead+len(plain))
	n := len(dst)
	dst = append(dst, nonce[:nonceBytes]...)
	return s.aead.Seal(dst, dst[n:], plain, aad)
}

// open returns the plaintext of a value made by seal.
func (s *sealer) open(sealed, aad []byte) ([]byte, error) { return s.openAppend(nil, sealed, aad) }

// openAppend appends the plaintext of a value made by seal to dst.
func (s *sealer) openAppend(dst, sealed, aad []byte) ([]byte, error) {
	if len(sealed) < sealOverhead {
		return nil, fmt.Errorf("sealed value of %d bytes is shorter than nonce and tag", len(sealed))
	}
	// Grown the way append grows: the AEAD would make room for exactly
	// this value, copying dst again for every value appended.
	dst = slices.Grow(dst, len(sealed)-sealOverhead)
	out, err := s.aead.Open(dst, sealed[:nonceBytes], sealed[nonceBytes:], aad)
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	return out, nil
}

// DefaultKeyFile is the key file of a queue at path when Options.KeyFile is
// empty: queue.db → queue.key, beside it.
func DefaultKeyFile(path string) string {
	return path[:len(path)-len(filepath.Ext(path))] + ".key"
}

// loadKey reads the hex key in path. When the file does not exist and
// create is true it writes a new random key durably (0600, written to a
// temporary file, fsynced and renamed) before returning it, so a key that
// sealed anything is always on disk.
func loadKey(path string, create bool) (key []byte, created bool, err error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		key, err = hex.DecodeString(string(bytes.TrimSpace(b)))
		if err != nil || len(key) != keyBytes {
			return nil, false, fmt.Errorf("key file %s does not hold %d hex-encoded bytes", path, keyBytes)
		}
		return key, false, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, false, fmt.Errorf("read key file: %w", err)
	case !create:
		return nil, false, fmt.Errorf("key file %s is missing but the queue holds data encrypted with it: "+
			"restore the key file (or move the queue file aside to start empty; its events are then lost)", path)
	}
	key = make([]byte, keyBytes)
	if _, err := rand.Read(key); err != nil {
		return nil, false, fmt.Errorf("generate key: %w", err)
	}
	// No replace: a key file that appeared meanwhile is never replaced.
	err = writeFileSync(path, false, func(f *os.File) error {
		_, err := f.Write([]byte(hex.EncodeToString(key) + "\n"))
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("write key file: %w", err)
	}
	return key, true, nil
}

// writeFileSync creates path, mode 0600, durably with what write puts in
// it: write fills a temporary file, which is fsynced, then put under the
// final name, then the directory is fsynced, so a partial file never stands
// there. With replace a file already at path is replaced; without, that is
// an error.
func writeFileSync(path string, replace bool, write func(*os.File) error) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	if err := tmp.Chmod(0o600); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := write(tmp); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if replace {
		err = os.Rename(tmp.Name(), path)
	} else {
		err = os.Link(tmp.Name(), path)
	}
	if err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
