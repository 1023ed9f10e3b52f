package store

import (
	"regexp"
	"strings"

	"github.com/google/uuid"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
)

// Names of the write-only secrets.
const (
	SecretSalesforceClientSecret = api.SecretSalesforceClientSecret
	SecretSalesforcePrivateKey   = api.SecretSalesforcePrivateKey
	SecretDataverseClientSecret  = api.SecretDataverseClientSecret
)

// SecretNames lists every secret name a connector can hold.
var SecretNames = []string{SecretDataverseClientSecret, SecretSalesforceClientSecret, SecretSalesforcePrivateKey}

// ID prefixes.
const (
	PrefixConnector = "con_"
	PrefixMapping   = "map_"
	PrefixLease     = "lease_"
)

// ID prefixes of backups and restores.
const (
	PrefixBackup  = "bak_"
	PrefixRestore = "rst_"
)

// ID prefixes of agent identities and enrollment tokens.
const (
	PrefixAgent      = "agt_"
	PrefixEnrollment = "enr_"
)

var idPattern = regexp.MustCompile(`^(con|map|lease|bak|rst|agt|enr)_[0-9a-f]{32}$`)

// NewID returns a fresh ID with the prefix: the prefix and a random UUID's 32 hex digits.
func NewID(prefix string) string { return prefix + strings.ReplaceAll(uuid.NewString(), "-", "") }

// ValidID reports whether id is an ID of the prefix's kind.
func ValidID(prefix, id string) bool {
	return strings.HasPrefix(id, prefix) && idPattern.MatchString(id)
}
