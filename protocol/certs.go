package protocol

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"time"
)

// Kinds of certificate IssueCert makes.
const (
	KindAgent      = "agent"      // client certificate; its CommonName is the agent's identity
	KindAggregator = "aggregator" // server certificate for the QUIC listener
)

// DefaultCertValidity is how long an issued certificate lasts unless asked.
const DefaultCertValidity = 397 * 24 * time.Hour

// caValidity is the lifetime of a CA made by InitCA.
const caValidity = 10 * 365 * 24 * time.Hour

// certName limits names to what is safe in a file name and in an agent key
// ("<name>/<queue id>").
var certName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// ErrCAExists is returned by InitCA when dir already holds a CA.
var ErrCAExists = errors.New("tls: a CA already exists")

// IssueRequest describes a certificate for IssueCert.
type IssueRequest struct {
	Kind string // KindAgent or KindAggregator
	Name string // CommonName: the agent's identity, or the aggregator's node name
	// Hosts are extra DNS names or IP addresses an aggregator is reached
	// at; localhost, 127.0.0.1, ::1 and Name are always included.
	Hosts    []string
	Validity time.Duration // DefaultCertValidity when 0

	now time.Time // issue time; tests set it to make expired certificates
}

// Issued names the files IssueCert wrote.
type Issued struct {
	Cert, Key string
}

// InitCA makes a private CA in dir (CAFile, and CAKeyFile with mode 0600).
// It refuses to replace an existing CA: certificates it signed would stop
// being trusted.
func InitCA(dir string) (caFile string, err error) {
	caFile, keyFile := filepath.Join(dir, CAFile), filepath.Join(dir, CAKeyFile)
	if fileExists(caFile) || fileExists(keyFile) {
		return caFile, fmt.Errorf("%w in %s (remove %s and %s to start over; every certificate must then be issued again)",
			ErrCAExists, dir, CAFile, CAKeyFile)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return caFile, fmt.Errorf("tls: create %s: %w", dir, err)
	}
	key, der, err := newCA("Avila Analytics cluster CA", time.Now())
	if err != nil {
		return caFile, err
	}
	if err := writePEM(keyFile, "EC PRIVATE KEY", mustMarshalEC(key), 0o600); err != nil {
		return caFile, err
	}
	if err := writePEM(caFile, "CERTIFICATE", der, 0o644); err != nil {
		return caFile, err
	}
	return caFile, nil
}

// IssueCert signs a certificate with the CA in dir and writes it as
// <kind>-<name>.pem with its key <kind>-<name>-key.pem (mode 0600).
func IssueCert(dir string, req IssueRequest) (Issued, error) {
	var out Issued
	if req.Kind != KindAgent && req.Kind != KindAggregator {
		return out, fmt.Errorf("tls: certificate kind %q: want %s or %s", req.Kind, KindAgent, KindAggregator)
	}
	if !certName.MatchString(req.Name) {
		return out, fmt.Errorf("tls: name %q: want 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit", req.Name)
	}
	if req.Validity < 0 {
		return out, errors.New("tls: validity must not be negative")
	}
	if req.Validity == 0 {
		req.Validity = DefaultCertValidity
	}
	if req.now.IsZero() {
		req.now = time.Now()
	}
	ca, caKey, err := loadCA(dir)
	if err != nil {
		return out, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return out, fmt.Errorf("tls: generate key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: req.Name},
		NotBefore:    req.now.Add(-time.Hour),
		NotAfter:     req.now.Add(req.Validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	if tmpl.NotAfter.After(ca.NotAfter) {
		tmpl.NotAfter = ca.NotAfter
	}
	if req.Kind == KindAgent {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.DNSNames = []string{"localhost", req.Name}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
		for _, h := range req.Hosts {
			if ip := net.ParseIP(h); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else if h != "" {
				tmpl.DNSNames = append(tmpl.DNSNames, h)
			}
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return out, fmt.Errorf("tls: sign %s certificate %s: %w", req.Kind, req.Name, err)
	}
	base := filepath.Join(dir, req.Kind+"-"+req.Name)
	out = Issued{Cert: base + ".pem", Key: base + "-key.pem"}
	if err := writePEM(out.Key, "EC PRIVATE KEY", mustMarshalEC(key), 0o600); err != nil {
		return out, err
	}
	if err := writePEM(out.Cert, "CERTIFICATE", der, 0o644); err != nil {
		return out, err
	}
	return out, nil
}

// newCA makes a CA key and self-signed certificate.
func newCA(name string, now time.Time) (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: generate CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: create CA certificate: %w", err)
	}
	return key, der, nil
}

// loadCA reads the CA certificate and key InitCA wrote in dir.
func loadCA(dir string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	caFile, keyFile := filepath.Join(dir, CAFile), filepath.Join(dir, CAKeyFile)
	if !fileExists(caFile) || !fileExists(keyFile) {
		return nil, nil, fmt.Errorf("tls: no CA in %s (run `avila certs init --dir %s` first)", dir, dir)
	}
	if err := checkKeyMode(keyFile); err != nil {
		return nil, nil, err
	}
	cert, err := readCert(caFile)
	if err != nil {
		return nil, nil, err
	}
	b, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: read CA key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, nil, fmt.Errorf("tls: %s holds no PEM key", keyFile)
	}
	key, err := x509.ParseECPrivateKey(blk.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: parse CA key %s: %w", keyFile, err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, nil, fmt.Errorf("tls: %s is not the key of %s", keyFile, caFile)
	}
	return cert, key, nil
}

func readCert(file string) (*x509.Certificate, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("tls: read %s: %w", file, err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("tls: %s holds no PEM certificate", file)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("tls: parse %s: %w", file, err)
	}
	return cert, nil
}
