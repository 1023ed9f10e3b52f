package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// goreleaserConfig is the part of .goreleaser.yml the Terraform Registry depends on.
type goreleaserConfig struct {
	ProjectName string `json:"project_name"`
	Builds      []struct {
		ID     string     `json:"id"`
		Main   string     `json:"main"`
		Binary string     `json:"binary"`
		Env    []string   `json:"env"`
		GOOS   []string   `json:"goos"`
		GOARCH []string   `json:"goarch"`
		Ignore []platform `json:"ignore"`
	} `json:"builds"`
	Archives []struct {
		ID           string   `json:"id"`
		IDs          []string `json:"ids"`
		Formats      []string `json:"formats"`
		NameTemplate string   `json:"name_template"`
		Files        []any    `json:"files"`
	} `json:"archives"`
	Checksum struct {
		NameTemplate string      `json:"name_template"`
		Algorithm    string      `json:"algorithm"`
		ExtraFiles   []extraFile `json:"extra_files"`
	} `json:"checksum"`
	Signs []struct {
		Artifacts string `json:"artifacts"`
	} `json:"signs"`
}

type platform struct {
	GOOS   string `json:"goos"`
	GOARCH string `json:"goarch"`
}

type extraFile struct {
	Glob         string `json:"glob"`
	NameTemplate string `json:"name_template"`
}

// TestGoreleaserConfig_registryLayout checks what the Terraform Registry requires of a provider release, which
// `goreleaser check` cannot know: binaries named terraform-provider-crmsync_vVERSION, one zip per platform
// named terraform-provider-crmsync_VERSION_OS_ARCH.zip holding nothing else, the scaffold's platforms (without
// darwin/386 and windows/arm, which Go or the registry do not support), the manifest and a signed SHA256SUMS;
// and that the crmsync runtime ships in archives of its own.
func TestGoreleaserConfig_registryLayout(t *testing.T) {
	b, err := os.ReadFile(".goreleaser.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg goreleaserConfig
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatalf(".goreleaser.yml: %v", err)
	}
	if cfg.ProjectName != "terraform-provider-crmsync" {
		t.Errorf("project_name = %q, want terraform-provider-crmsync (the registry derives the provider's name from it)", cfg.ProjectName)
	}
	builds := map[string]int{}
	for i, bd := range cfg.Builds {
		builds[bd.ID] = i
	}
	pi, ok := builds["provider"]
	if !ok {
		t.Fatal("no build with id provider")
	}
	provider := cfg.Builds[pi]
	if provider.Main != "." || provider.Binary != "{{ .ProjectName }}_v{{ .Version }}" || !slices.Contains(provider.Env, "CGO_ENABLED=0") {
		t.Errorf("provider build: main %q, binary %q, env %v; want ., {{ .ProjectName }}_v{{ .Version }}, CGO_ENABLED=0", provider.Main, provider.Binary, provider.Env)
	}
	for _, want := range []platform{{"darwin", "386"}, {"windows", "arm"}} {
		if !slices.Contains(provider.Ignore, want) {
			t.Errorf("provider build does not ignore %s/%s", want.GOOS, want.GOARCH)
		}
	}
	for _, goos := range []string{"linux", "darwin", "windows", "freebsd"} {
		if !slices.Contains(provider.GOOS, goos) {
			t.Errorf("provider build misses goos %s", goos)
		}
	}
	ci, ok := builds["crmsync"]
	if !ok || cfg.Builds[ci].Main != "./cmd/crmsync" {
		t.Error("no build with id crmsync of ./cmd/crmsync")
	}

	archives := map[string]int{}
	for i, a := range cfg.Archives {
		archives[a.ID] = i
	}
	if i, ok := archives["provider"]; !ok {
		t.Error("no archive with id provider")
	} else {
		a := cfg.Archives[i]
		if !slices.Equal(a.IDs, []string{"provider"}) || !slices.Equal(a.Formats, []string{"zip"}) ||
			a.NameTemplate != "{{ .ProjectName }}_{{ .Version }}_{{ .Os }}_{{ .Arch }}" {
			t.Errorf("provider archive: ids %v, formats %v, name %q; want [provider], [zip], {{ .ProjectName }}_{{ .Version }}_{{ .Os }}_{{ .Arch }}",
				a.IDs, a.Formats, a.NameTemplate)
		}
		if !slices.Equal(a.Files, []any{"none*"}) {
			t.Errorf("provider archive files = %v, want [none*]: the registry's zips hold the binary only", a.Files)
		}
	}
	if i, ok := archives["crmsync"]; !ok || !slices.Equal(cfg.Archives[i].IDs, []string{"crmsync"}) {
		t.Error("no archive with id crmsync holding the crmsync build only")
	}

	if cfg.Checksum.NameTemplate != "{{ .ProjectName }}_{{ .Version }}_SHA256SUMS" || cfg.Checksum.Algorithm != "sha256" {
		t.Errorf("checksum: %q %q, want {{ .ProjectName }}_{{ .Version }}_SHA256SUMS sha256", cfg.Checksum.NameTemplate, cfg.Checksum.Algorithm)
	}
	if !slices.Contains(cfg.Checksum.ExtraFiles, extraFile{"terraform-registry-manifest.json", "{{ .ProjectName }}_{{ .Version }}_manifest.json"}) {
		t.Error("the registry manifest is not in SHA256SUMS as {{ .ProjectName }}_{{ .Version }}_manifest.json")
	}
	if len(cfg.Signs) != 1 || cfg.Signs[0].Artifacts != "checksum" {
		t.Errorf("signs = %+v, want one signature of the checksum file", cfg.Signs)
	}
}

// TestRegistryManifest_protocolMatchesTheServer: the manifest tells the registry which plugin protocol the
// provider speaks; main.go serves protocol 6 (providerserver.Serve).
func TestRegistryManifest_protocolMatchesTheServer(t *testing.T) {
	b, err := os.ReadFile("terraform-registry-manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Version  int `json:"version"`
		Metadata struct {
			ProtocolVersions []string `json:"protocol_versions"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("terraform-registry-manifest.json: %v", err)
	}
	if m.Version != 1 || !slices.Equal(m.Metadata.ProtocolVersions, []string{"6.0"}) {
		t.Errorf("manifest version %d, protocols %v; want 1, [6.0]", m.Version, m.Metadata.ProtocolVersions)
	}
}

// TestGoreleaserCheck runs `goreleaser check` on .goreleaser.yml with the goreleaser make tools installs into
// ./bin (make test installs it; a plain go test without it skips).
func TestGoreleaserCheck(t *testing.T) {
	bin, err := filepath.Abs(filepath.Join("bin", "goreleaser"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Skip("./bin/goreleaser is missing: make tools installs it")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "check", ".goreleaser.yml")
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("goreleaser check: %v\n%s", err, out)
	}
}
