package protocol

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"
)

// loadKeyPair loads a certificate and its key, refusing a key file others
// can read and a certificate outside its validity period: both are start-up
// errors that say what to do, not handshake failures found later.
func loadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	if err := checkKeyMode(keyFile); err != nil {
		return tls.Certificate{}, err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return cert, fmt.Errorf("tls: load %s and %s: %w", certFile, keyFile, err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return cert, fmt.Errorf("tls: parse %s: %w", certFile, err)
		}
	}
	if err := checkValidity(certFile, leaf, time.Now()); err != nil {
		return cert, err
	}
	return cert, nil
}

// checkKeyMode refuses a private key file that its group or others may read
// or write.
func checkKeyMode(keyFile string) error {
	fi, err := os.Stat(keyFile)
	if err != nil {
		return fmt.Errorf("tls: key file: %w", err)
	}
	if mode := fi.Mode().Perm(); mode&0o077 != 0 {
		return fmt.Errorf("tls: key file %s is accessible to group or others (mode %04o); run: chmod 600 %s", keyFile, mode, keyFile)
	}
	return nil
}

func checkValidity(file string, c *x509.Certificate, now time.Time) error {
	switch {
	case now.After(c.NotAfter):
		return fmt.Errorf("tls: certificate %s (%s) expired on %s; issue a new one (avila certs issue)",
			file, c.Subject.CommonName, c.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(c.NotBefore):
		return fmt.Errorf("tls: certificate %s (%s) is not valid before %s; check the clock",
			file, c.Subject.CommonName, c.NotBefore.UTC().Format(time.RFC3339))
	}
	return nil
}

// errNoClientCert is the reason given to and logged for an agent that
// presents no certificate to an aggregator requiring one.
var errNoClientCert = errors.New("no client certificate (start the agent with --cert and --key issued by the cluster CA)")

// verifyClient checks an agent's certificate against the client CA pool.
// It runs in tls.Config.VerifyConnection so that every refusal has a reason
// the server can log (crypto/tls's own check aborts before any callback).
func verifyClient(pool *x509.CertPool) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errNoClientCert
		}
		opts := x509.VerifyOptions{Roots: pool, Intermediates: x509.NewCertPool(),
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
		for _, c := range cs.PeerCertificates[1:] {
			opts.Intermediates.AddCert(c)
		}
		leaf := cs.PeerCertificates[0]
		if _, err := leaf.Verify(opts); err != nil {
			return fmt.Errorf("client certificate %q refused: %w", leaf.Subject.CommonName, err)
		}
		if leaf.Subject.CommonName == "" {
			return errors.New("client certificate has no CommonName, the agent's identity")
		}
		return nil
	}
}
