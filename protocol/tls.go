package protocol

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Files written by EnsureDevCerts in a data directory.
const (
	CAFile      = "ca.pem"
	CAKeyFile   = "ca-key.pem"
	ServerCert  = "aggregator.pem"
	ServerKey   = "aggregator-key.pem"
	certsSubdir = "tls"
)

// DevCerts names the files of a locally generated CA and server certificate.
type DevCerts struct {
	CA, Cert, Key string
}

// EnsureDevCerts makes (once) a private CA and an aggregator certificate for
// localhost, 127.0.0.1 and ::1 under dir/tls, and returns their paths. Later
// runs reuse the files, so agents keep trusting the same CA.
func EnsureDevCerts(dir string) (DevCerts, error) {
	d := filepath.Join(dir, certsSubdir)
	out := DevCerts{CA: filepath.Join(d, CAFile), Cert: filepath.Join(d, ServerCert), Key: filepath.Join(d, ServerKey)}
	if fileExists(out.CA) && fileExists(out.Cert) && fileExists(out.Key) {
		return out, nil
	}
	if err := os.MkdirAll(d, 0o700); err != nil {
		return out, fmt.Errorf("tls: create %s: %w", d, err)
	}
	now := time.Now()
	caKey, caDER, err := newCA("Avila Analytics local CA", now)
	if err != nil {
		return out, err
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return out, fmt.Errorf("tls: generate server key: %w", err)
	}
	host, _ := os.Hostname()
	srvTmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "avila-aggregator"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost", "avila-aggregator"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if host != "" {
		srvTmpl.DNSNames = append(srvTmpl.DNSNames, host)
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		return out, fmt.Errorf("tls: create server certificate: %w", err)
	}
	if err := writePEM(filepath.Join(d, CAKeyFile), "EC PRIVATE KEY", mustMarshalEC(caKey), 0o600); err != nil {
		return out, err
	}
	if err := writePEM(out.Key, "EC PRIVATE KEY", mustMarshalEC(srvKey), 0o600); err != nil {
		return out, err
	}
	if err := writePEM(out.Cert, "CERTIFICATE", srvDER, 0o644); err != nil {
		return out, err
	}
	// The CA file is written last: its presence marks a complete set.
	if err := writePEM(out.CA, "CERTIFICATE", caDER, 0o644); err != nil {
		return out, err
	}
	return out, nil
}

// ServerTLS loads an aggregator's certificate. With clientCA set, agents must
// present a certificate for client authentication signed by it (mTLS); the
// certificate's CommonName is then the agent's identity (Peer.CommonName),
// and a Server logs each refused agent with the reason.
//
// The key file must not be accessible to group or others, and the
// certificate must be within its validity period.
func ServerTLS(certFile, keyFile, clientCA string) (*tls.Config, error) {
	cert, err := loadKeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	conf := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13, NextProtos: []string{ALPN}}
	if clientCA != "" {
		pool, err := loadPool(clientCA)
		if err != nil {
			return nil, err
		}
		// The certificate is requested here and required by
		// verifyClient, which can say why it refused one.
		conf.ClientCAs = pool
		conf.ClientAuth = tls.RequestClientCert
		conf.VerifyConnection = verifyClient(pool)
	}
	return conf, nil
}

// ClientTLS trusts the CA in caFile; certFile/keyFile, when set, are the
// agent's own certificate for mTLS, checked like ServerTLS checks the
// aggregator's (key file mode, validity period).
func ClientTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	pool, err := loadPool(caFile)
	if err != nil {
		return nil, err
	}
	conf := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13, NextProtos: []string{ALPN}, ServerName: "localhost"}
	if certFile != "" || keyFile != "" {
		cert, err := loadKeyPair(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	return conf, nil
}

func loadPool(caFile string) (*x509.CertPool, error) {
	b, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("tls: read CA %s: %w", caFile, err)
	}
	pool := x509.NewCertPool()
	now, n := time.Now(), 0
	for rest := b; ; {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("tls: parse CA %s: %w", caFile, err)
		}
		if err := checkValidity(caFile, c, now); err != nil {
			return nil, err
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("tls: %s holds no PEM certificate", caFile)
	}
	return pool, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}

func mustMarshalEC(k *ecdsa.PrivateKey) []byte {
	b, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		panic("BUG: marshal freshly generated P-256 key: " + err.Error())
	}
	return b
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	b := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return fmt.Errorf("tls: write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("tls: write %s: %w", path, err)
	}
	return nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return !errors.Is(err, os.ErrNotExist)
}
