package store

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/statedir"
)

// KeyFile is the name of the secret-encryption key inside the data directory.
const KeyFile = "secret.key"

// keyCheckPlain is encrypted under the key into the meta table when the key is created, so a wrong key is
// detected at open even before any connector holds a secret.
const keyCheckPlain = "crmsync secret key check"

// sealVersion prefixes every ciphertext, so the format can change later without guessing.
const sealVersion = 1

// loadKey reads the key file (DIR/secret.key), or generates it (32 random bytes, base64, mode 0600) when
// create is set and the file does not exist. A key file that group or others can access is refused (but for
// one root owns and only the process's own group may read: a mounted Kubernetes Secret): it protects every
// inline secret of the store.
func loadKey(path string, create bool) (key []byte, created bool, err error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		if !create {
			return nil, false, fmt.Errorf("%s is missing but the database holds secrets encrypted under it; restore the key file", path)
		}
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, false, fmt.Errorf("generating %s: %w", path, err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, false, fmt.Errorf("creating %s: %w", path, err)
		}
		_, werr := f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
		if serr := f.Sync(); werr == nil {
			werr = serr
		}
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return nil, false, fmt.Errorf("writing %s: %w", path, werr)
		}
		return key, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading %s: %w", path, err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && !statedir.OwnGroupOnly(fi) {
		return nil, false, fmt.Errorf("%s has mode %04o: it must not be readable by group or others (chmod 600 %s)", path, perm, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, false, fmt.Errorf("reading %s: %w", path, err)
	}
	key, err = base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) != 32 {
		return nil, false, fmt.Errorf("%s does not hold a base64 AES-256 key (32 bytes)", path)
	}
	return key, false, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// seal encrypts plain with AES-256-GCM; aad binds the ciphertext to its row (a connector's secrets cannot
// be copied onto another connector).
func seal(aead cipher.AEAD, plain, aad []byte) ([]byte, error) {
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out := append([]byte{sealVersion}, nonce...)
	return aead.Seal(out, nonce, plain, aad), nil
}

func open(aead cipher.AEAD, sealed, aad []byte) ([]byte, error) {
	n := aead.NonceSize()
	if len(sealed) < 1+n || sealed[0] != sealVersion {
		return nil, errors.New("not a sealed value of a known format")
	}
	return aead.Open(nil, sealed[1:1+n], sealed[1+n:], aad)
}
