package agent

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/policy"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/sink/dataverse"
	"github.com/crmsync/terraform-provider-crmsync/internal/strictjson"
)

// Config is one connector's agent configuration (see api.Config).
type (
	Config           = api.Config
	SalesforceConfig = api.SalesforceConfig
	DataverseConfig  = api.DataverseConfig
	Tuning           = api.Tuning
	Duration         = api.Duration
)

// Defaults of the agent's tuning.
const (
	DefaultBatchSize        = api.DefaultBatchSize
	DefaultFlushInterval    = api.DefaultFlushInterval
	DefaultWriteConcurrency = api.DefaultWriteConcurrency
	DefaultPageSize         = api.DefaultPageSize
	DefaultStatusInterval   = api.DefaultStatusInterval
	DefaultPubSubAddr       = api.DefaultPubSubAddr
)

// LoadConfig reads a JSON or YAML config file strictly (unknown keys are errors) and validates it.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	// YAML (JSON is YAML) becomes JSON, refusing a key given twice; strictjson then refuses a key given twice
	// in another case, a key in another case than documented, unknown keys, and reports required keys left
	// out together with the other problems.
	js, err := yaml.YAMLToJSONStrict(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var cfg Config
	var missing strictjson.MissingErrors
	if err := strictjson.Decode(js, &cfg); err != nil && !errors.As(err, &missing) {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	base := filepath.Dir(path)
	for _, p := range []*string{&cfg.Salesforce.PrivateKeyFile, &cfg.Salesforce.ClientSecretFile, &cfg.Salesforce.CAFile,
		&cfg.Dataverse.ClientSecretFile, &cfg.Dataverse.CAFile} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
	// The file declares the mappings; their effective columns are resolved here, as the control plane does for
	// a revision (any in the file, a revision's config saved as it was, are resolved again).
	cfg.Resolve()
	// A required key left out is reported once, by strictjson.
	errs := []error{}
	left := map[string]bool{}
	for _, m := range missing {
		errs, left[m.Field] = append(errs, m), true
	}
	for _, err := range cfg.Problems() {
		var fe *api.FieldError
		if errors.As(err, &fe) && left[fe.Field] {
			continue
		}
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &cfg, nil
}

// secret resolves an inline value, an environment variable or a file, in that order of precedence, within
// the reference policy refs. field names the secret as configured ("salesforce.private_key"); errors name the
// form that failed ("salesforce.private_key_file"). A secret file group or others can read is refused unless
// allowReadable: whoever else can read it holds the credential too.
func secret(refs policy.Refs, field, inline, env, file string, allowReadable bool) (string, error) {
	switch {
	case inline != "":
		return inline, nil
	case env != "":
		return refs.Getenv(field+"_env", env)
	case file != "":
		if fe := refs.CheckFile(field+"_file", file); fe != nil {
			return "", fe
		}
		fi, err := os.Stat(file)
		if err != nil {
			return "", fmt.Errorf("%s_file: %w", field, err)
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 && !allowReadable && runtime.GOOS != "windows" {
			return "", fmt.Errorf("%s_file: %s has mode %04o: a secret file must be readable by its owner only (chmod 600 %s), or allow it explicitly (crmsync agent --allow-readable-secret-files)", field, file, perm, file)
		}
		b, err := refs.ReadFile(field+"_file", file)
		if err != nil {
			return "", fmt.Errorf("%s_file: %w", field, err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return "", nil
}

// moreUsers resolves the secrets of the additional Dataverse application users, each error naming its user's
// field (dataverse.additional_application_users[1].client_secret_file).
func moreUsers(refs policy.Refs, users []api.DataverseApplicationUser, allowReadable bool) ([]dataverse.Credentials, error) {
	var out []dataverse.Credentials
	var errs []error
	for i, u := range users {
		field := fmt.Sprintf("dataverse.additional_application_users[%d].client_secret", i)
		v, err := secret(refs, field, u.ClientSecret, u.ClientSecretEnv, u.ClientSecretFile, allowReadable)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, dataverse.Credentials{ClientID: u.ClientID, ClientSecret: v})
	}
	return out, errors.Join(errs...)
}

// sourceOf names the form a secret was given in, for messages: "salesforce.private_key_file".
func sourceOf(field, inline, env, file string) string {
	switch {
	case inline != "":
		return field
	case env != "":
		return field + "_env"
	case file != "":
		return field + "_file"
	}
	return field
}

// checkKey checks the Salesforce private key at start: PEM, a private key (not a certificate), and RSA, which
// the JWT bearer flow's RS256 signature needs. Without this a wrong key failed every token request and was
// retried forever.
func checkKey(field string, key []byte) error {
	if fe := api.CheckPrivateKeyPEM(field, key); fe != nil {
		return fe
	}
	block, _ := pem.Decode(key)
	var k any
	var err error
	switch block.Type {
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	default:
		return fmt.Errorf("%s holds a PEM %s; the JWT bearer flow needs an RSA private key (PKCS #1 or PKCS #8)", field, block.Type)
	}
	if err != nil {
		return fmt.Errorf("%s is not a readable private key: %w", field, err)
	}
	if _, ok := k.(*rsa.PrivateKey); !ok {
		return fmt.Errorf("%s holds a %T; the JWT bearer flow signs with RS256 and needs an RSA private key", field, k)
	}
	return nil
}
