package store

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"strings"
	"time"
)

// Agent identities and enrollment tokens. Credentials have the form "<id>.<secret>" (as Kubernetes bootstrap
// tokens do): the ID is public, for lists and the audit log; the secret is 32 random bytes, and only its
// SHA-256 is stored, so the database never holds a usable credential.

// newSecret returns a credential's secret and the hash to store.
func newSecret() (string, []byte, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", nil, err
	}
	s := base64.RawURLEncoding.EncodeToString(b)
	h := sha256.Sum256([]byte(s))
	return s, h[:], nil
}

// SplitCredential splits "<id>.<secret>" and checks the ID's kind.
func SplitCredential(prefix, cred string) (id, secret string, ok bool) {
	id, secret, ok = strings.Cut(cred, ".")
	return id, secret, ok && ValidID(prefix, id) && secret != ""
}

func sameHash(secret string, hash []byte) bool {
	h := sha256.Sum256([]byte(secret))
	return len(hash) == len(h) && subtle.ConstantTimeCompare(h[:], hash) == 1
}

// Bounds of an enrollment token's lifetime.
const (
	DefaultEnrollmentTTL = time.Hour
	MaxEnrollmentTTL     = 24 * time.Hour
)
