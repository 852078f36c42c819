package governance

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/crypto/argon2"
)

// Encrypted export files: a header, then AES-256-GCM of the export under a
// key derived from a passphrase with Argon2id (RFC 9106's second
// recommended option: 3 passes, 64 MiB, 4 lanes), the header as
// associated data so no parameter can be altered unnoticed:
//
//	"AVILA-ENC-1\n" | time uint32 | memory KiB uint32 | lanes uint8 | salt [16] | nonce [12] | ciphertext+tag
//
// `avila gdpr decrypt` reverses it.
const encMagic = "AVILA-ENC-1\n"

const (
	argonTime    = 3
	argonMemory  = 64 * 1024 // KiB
	argonLanes   = 4
	saltLen      = 16
	encHeaderLen = len(encMagic) + 4 + 4 + 1 + saltLen + 12
	// maxArgonMemory bounds what a file may ask a decryptor to allocate.
	maxArgonMemory = 1024 * 1024 // KiB: 1 GiB
)

// MinPassphrase is the shortest passphrase Encrypt takes.
const MinPassphrase = 12

// ErrDecrypt: the passphrase is wrong or the file was altered.
var ErrDecrypt = errors.New("cannot decrypt: wrong passphrase, or the file was altered")

// Encrypt seals plain under passphrase.
func Encrypt(plain, passphrase []byte) ([]byte, error) {
	if len(passphrase) < MinPassphrase {
		return nil, fmt.Errorf("governance: encrypt: passphrase of %d bytes, want at least %d", len(passphrase), MinPassphrase)
	}
	hdr := make([]byte, 0, encHeaderLen)
	hdr = append(hdr, encMagic...)
	hdr = binary.BigEndian.AppendUint32(hdr, argonTime)
	hdr = binary.BigEndian.AppendUint32(hdr, argonMemory)
	hdr = append(hdr, argonLanes)
	salt := make([]byte, saltLen)
	nonce := make([]byte, 12)
	_, _ = rand.Read(salt)
	_, _ = rand.Read(nonce)
	hdr = append(append(hdr, salt...), nonce...)
	aead, err := newAEAD(passphrase, salt, argonTime, argonMemory, argonLanes)
	if err != nil {
		return nil, err
	}
	return aead.Seal(hdr, nonce, plain, hdr), nil
}

// Decrypt opens what Encrypt sealed.
func Decrypt(sealed, passphrase []byte) ([]byte, error) {
	if len(sealed) < encHeaderLen || !bytes.HasPrefix(sealed, []byte(encMagic)) {
		return nil, errors.New("governance: decrypt: not an encrypted Avila export (no AVILA-ENC-1 header)")
	}
	p := sealed[len(encMagic):]
	t, mem, lanes := binary.BigEndian.Uint32(p), binary.BigEndian.Uint32(p[4:]), p[8]
	if t == 0 || t > 100 || mem < 8*uint32(max(lanes, 1)) || mem > maxArgonMemory || lanes == 0 {
		return nil, fmt.Errorf("governance: decrypt: implausible Argon2id parameters (time %d, memory %d KiB, lanes %d)", t, mem, lanes)
	}
	salt := p[9 : 9+saltLen]
	nonce := p[9+saltLen : 9+saltLen+12]
	aead, err := newAEAD(passphrase, salt, t, mem, lanes)
	if err != nil {
		return nil, err
	}
	plain, err := aead.Open(nil, nonce, sealed[encHeaderLen:], sealed[:encHeaderLen])
	if err != nil {
		return nil, fmt.Errorf("governance: decrypt: %w", ErrDecrypt)
	}
	return plain, nil
}

func newAEAD(passphrase, salt []byte, t, mem uint32, lanes uint8) (cipher.AEAD, error) {
	key := argon2.IDKey(passphrase, salt, t, mem, lanes, 32)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("governance: cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("governance: cipher: %w", err)
	}
	return aead, nil
}
