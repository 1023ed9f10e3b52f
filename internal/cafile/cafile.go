// Package cafile builds the TLS configuration of crmsync's HTTPS clients: TLS 1.2 at least, and the system's
// certificate authorities plus, when the operator names one, those of a PEM file (a private CA, or the
// sandbox's). The two service clients and the control plane's API client use it; it imports nothing of the
// project's, so every floor may.
package cafile

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// TLSConfig returns the client TLS configuration trusting the system's roots and the certificates of the
// PEM file at path (none when path is empty). field names the setting in errors ("ca_file").
func TLSConfig(field, path string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if path == "" {
		return cfg, nil
	}
	pem, err := os.ReadFile(path) //nolint:gosec // a file the operator names
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", field, err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s %s holds no PEM certificate", field, path)
	}
	cfg.RootCAs = pool
	return cfg, nil
}
