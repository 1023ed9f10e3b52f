package cafile

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTLSConfigTrustsTheFilesCertificatesAndNamesABadFile(t *testing.T) {
	cfg, err := TLSConfig("ca_file", "")
	if err != nil || cfg.RootCAs != nil || cfg.MinVersion != tls.VersionTLS12 {
		t.Fatalf("no file: %+v, %v; want the system roots and TLS 1.2 at least", cfg, err)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "crmsync test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(good, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err = TLSConfig("ca_file", good)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: cfg.RootCAs}); err != nil {
		t.Errorf("the file's CA is not trusted: %v", err)
	}

	bad := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(bad, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := TLSConfig("ca_file", bad); err == nil || !strings.Contains(err.Error(), "ca_file "+bad+" holds no PEM certificate") {
		t.Errorf("a file without a certificate: %v", err)
	}
	if _, err := TLSConfig("CA file", filepath.Join(dir, "missing")); err == nil || !strings.HasPrefix(err.Error(), "reading CA file: ") {
		t.Errorf("a missing file: %v", err)
	}
}
