// Package sfid implements Salesforce record Id rules shared by the runtime, the sandbox and the provider:
// the 15- to 18-character case-safe conversion, validation, comparison, and the deterministic GUID a
// Salesforce Id becomes in Dataverse (docs/architecture.md, "Mapping rules").
package sfid

import (
	"crypto/sha1" //nolint:gosec // G505: UUIDv5 is defined over SHA-1; nothing here relies on its strength
	"fmt"

	"github.com/google/uuid"
)

const (
	suffixAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
	// Base62 is the alphabet of Salesforce Ids, in ASCII order so fixed-width counters sort as strings.
	Base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

// Namespace is the UUIDv5 namespace of crmsync's Salesforce-Id GUIDs:
// UUIDv5(NameSpaceDNS, "salesforce.crmsync") = 5468e1b7-8037-5cb0-9c25-180905dcdad6.
var Namespace = uuid.NewSHA1(uuid.NameSpaceDNS, []byte("salesforce.crmsync"))

// Suffix returns the three-character case-safe suffix of a 15-character Id. The caller must pass exactly
// 15 characters.
func Suffix(id15 string) string {
	var out [3]byte
	for chunk := 0; chunk < 3; chunk++ {
		n := 0
		for j := 0; j < 5; j++ {
			c := id15[chunk*5+j]
			if c >= 'A' && c <= 'Z' {
				n |= 1 << j
			}
		}
		out[chunk] = suffixAlphabet[n]
	}
	return string(out[:])
}

// To18 converts a 15- or 18-character Id to its 18-character case-safe form. An 18-character Id is
// returned with its suffix recomputed from the first 15 characters (the suffix is case-insensitive on
// input, so "...iaz" and "...IAZ" both normalise to the canonical form).
func To18(id string) (string, error) {
	if err := checkChars(id); err != nil {
		return "", err
	}
	switch len(id) {
	case 15:
		return id + Suffix(id), nil
	case 18:
		want := Suffix(id[:15])
		for i := 0; i < 3; i++ {
			if upper(id[15+i]) != want[i] {
				return "", fmt.Errorf("invalid Salesforce Id %q: case-safe suffix %q does not match %q", id, id[15:], want)
			}
		}
		return id[:15] + want, nil
	default:
		return "", fmt.Errorf("invalid Salesforce Id %q: want 15 or 18 characters, got %d", id, len(id))
	}
}

// Valid reports whether id is a well-formed 15- or 18-character Id.
func Valid(id string) bool {
	_, err := To18(id)
	return err == nil
}

// Equal compares two Ids the way Salesforce does: by their first 15 characters, case-sensitively.
// Malformed Ids are never equal.
func Equal(a, b string) bool {
	a18, errA := To18(a)
	b18, errB := To18(b)
	return errA == nil && errB == nil && a18 == b18
}

// KeyPrefix returns the first three characters of an Id, which name its object (001 Account, 003 Contact).
func KeyPrefix(id string) string {
	if len(id) < 3 {
		return ""
	}
	return id[:3]
}

// GUID returns the deterministic Dataverse GUID of a Salesforce Id: UUIDv5(Namespace, id18). It is what
// uuid.NewSHA1(Namespace, []byte(To18(id))) returns, computed without allocating: loads call it twice per
// record (the row's key and its lookup).
func GUID(id string) (uuid.UUID, error) {
	if (len(id) != 15 && len(id) != 18) || checkChars(id) != nil {
		_, err := To18(id) // the error that names the problem
		return uuid.Nil, err
	}
	var buf [len(Namespace) + 18]byte
	n := copy(buf[:], Namespace[:])
	n += copy(buf[n:], id[:15])
	suffix := buf[n : n+3]
	for chunk := 0; chunk < 3; chunk++ {
		bits := 0
		for j := 0; j < 5; j++ {
			if c := id[chunk*5+j]; c >= 'A' && c <= 'Z' {
				bits |= 1 << j
			}
		}
		suffix[chunk] = suffixAlphabet[bits]
		if len(id) == 18 && upper(id[15+chunk]) != suffix[chunk] {
			_, err := To18(id)
			return uuid.Nil, err
		}
	}
	sum := sha1.Sum(buf[:]) //nolint:gosec // G401: UUIDv5 is defined over SHA-1 (RFC 9562); not a security use
	var g uuid.UUID
	copy(g[:], sum[:])
	g[6] = (g[6] & 0x0f) | 0x50 // version 5
	g[8] = (g[8] & 0x3f) | 0x80 // RFC 4122 variant
	return g, nil
}

// AppendGUID appends g in its canonical text form (8-4-4-4-12 lower-case hex digits), as uuid.UUID.String
// writes it, without allocating.
func AppendGUID(b []byte, g [16]byte) []byte {
	const hex = "0123456789abcdef"
	for i, x := range g {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, hex[x>>4], hex[x&0xf])
	}
	return b
}

// IsSyncGUID reports whether a Dataverse key can be the GUID of a Salesforce Id (GUID gives UUIDv5s): rows
// people create get other GUIDs and are never the sync's.
func IsSyncGUID(key string) bool {
	u, err := uuid.Parse(key)
	return err == nil && u.Version() == 5 && u.Variant() == uuid.RFC4122
}

// MustGUID is GUID for Ids already known to be valid; it panics otherwise.
func MustGUID(id string) uuid.UUID {
	g, err := GUID(id)
	if err != nil {
		panic(err)
	}
	return g
}

func checkChars(id string) error {
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'A' || c > 'Z') && (c < 'a' || c > 'z') {
			return fmt.Errorf("invalid Salesforce Id %q: character %q at position %d is not alphanumeric", id, c, i+1)
		}
	}
	return nil
}

func upper(c byte) byte {
	if c >= 'a' && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}
