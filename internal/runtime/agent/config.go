package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
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
	var cfg Config
	if err := yaml.UnmarshalStrict(b, &cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	base := filepath.Dir(path)
	for _, p := range []*string{&cfg.Salesforce.PrivateKeyFile, &cfg.Salesforce.ClientSecretFile, &cfg.Salesforce.CAFile,
		&cfg.Dataverse.ClientSecretFile, &cfg.Dataverse.CAFile} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &cfg, nil
}

// secret resolves an inline value, an environment variable or a file, in that order of precedence.
func secret(what, inline, env, file string) (string, error) {
	switch {
	case inline != "":
		return inline, nil
	case env != "":
		v, ok := os.LookupEnv(env)
		if !ok || v == "" {
			return "", fmt.Errorf("%s: environment variable %s is not set", what, env)
		}
		return v, nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("%s: %w", what, err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return "", nil
}
