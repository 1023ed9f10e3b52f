package store

import (
	"regexp"
	"slices"
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

// SecretNames lists the fixed secret names a connector can hold; each additional Dataverse application user
// adds one more (api.DataverseApplicationUser.SecretName, see KnownSecret).
var SecretNames = []string{SecretDataverseClientSecret, SecretSalesforceClientSecret, SecretSalesforcePrivateKey}

// additionalUserSecret matches the secret name of an additional Dataverse application user.
var additionalUserSecret = regexp.MustCompile(`^` + regexp.QuoteMeta(api.SecretDataverseAdditionalUserPrefix) +
	`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.client_secret$`)

// KnownSecret reports whether name is a secret a connector can hold.
func KnownSecret(name string) bool {
	return slices.Contains(SecretNames, name) || additionalUserSecret.MatchString(name)
}

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
