package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
	"github.com/crmsync/terraform-provider-crmsync/internal/plansummary"
)

// updateGolden rewrites the plans and summaries of internal/plansummary/testdata from this run:
//
//	TF_ACC=1 TF_ACC_TERRAFORM_PATH=$PWD/bin/terraform go test ./internal/provider -run TestAccPlanSummary -update
var updateGolden = flag.Bool("update", false, "rewrite the golden plans and summaries of internal/plansummary/testdata")

// goldenDir holds the real plans (normalized), the record counts the control plane gave, and their summaries.
var goldenDir = filepath.Join("..", "plansummary", "testdata")

// planScenario is one change reviewed in a pull request: a configuration planned against the applied base.
type planScenario struct {
	name    string
	config  func(base planBase) string
	destroy bool
	// before changes things outside Terraform before the plan (drift).
	before func(t *testing.T, env *syncEnv)
	// applied, when set, is applied before the plan (and the base again after it).
	applied func(base planBase) string
	// writeOnly scenarios need a CLI with write-only arguments (Terraform or OpenTofu 1.11 and later).
	writeOnly bool
}

// planBase is the applied configuration: a connector (credential references only), the Contact and Account
// mappings (Contact with the quick start's jobtitle override) and the activation.
type planBase struct {
	env         *syncEnv
	team        string
	contactCols string
	exclude     string
	// dvCredential is the Dataverse secret's argument (the sandbox's secret file by default); extra is added
	// to the configuration.
	dvCredential string
	extra        string
}

func (b planBase) hcl() string {
	cred := b.dvCredential
	if cred == "" {
		cred = fmt.Sprintf("client_secret_file = %q", b.env.sb.Info.Dataverse.ClientSecretFile)
	}
	return requiredProviders + `provider "crmsync" {}
` + b.extra + b.env.connectorHCLWith("salesforce-prod", b.team, cred) + fmt.Sprintf(`
resource "crmsync_table_mapping" "account" {
  connector_id = crmsync_connector.sandbox.id
  source_table = "Account"
}

resource "crmsync_table_mapping" "contact" {
  connector_id    = crmsync_connector.sandbox.id
  source_table    = "Contact"
  columns         = {
%s
  }
  exclude_columns = [%s]
  depends_on      = [crmsync_table_mapping.account]
}

resource "crmsync_activation" "sandbox" {
  connector_id = crmsync_connector.sandbox.id
  wait_for     = "initial_load"
  depends_on   = [crmsync_table_mapping.account, crmsync_table_mapping.contact]
}
`, b.contactCols, b.exclude)
}

// writeOnlyBase is the base with the Dataverse secret write-only, from an ephemeral variable, at a version.
func writeOnlyBase(b planBase, version int) string {
	b.extra = `variable "dv_secret" {
  type      = string
  sensitive = true
  ephemeral = true
}
`
	b.dvCredential = fmt.Sprintf("client_secret_wo = var.dv_secret\n    client_secret_wo_version = %d", version)
	return b.hcl()
}

const (
	baseContactColumns = `    jobtitle = { source = "Title", truncate = true }`
	baseExclude        = `"assistantphone", "mobilephone"`
)

// planScenarios are the changes the golden summaries show.
var planScenarios = []planScenario{
	{name: "add-columns", config: func(b planBase) string {
		b.exclude = ""
		return b.hcl()
	}},
	{name: "remove-column", config: func(b planBase) string {
		b.exclude += `, "fax"`
		return b.hcl()
	}},
	{name: "change-source", config: func(b planBase) string {
		b.contactCols = baseContactColumns + `
    department = { source = "Title" }`
		return b.hcl()
	}},
	{name: "change-team", config: func(b planBase) string {
		b.team = b.env.sb.Info.Dataverse.TeamWithoutPrivilegesID
		return b.hcl()
	}, before: func(t *testing.T, env *syncEnv) {
		// The plan checks an active connector's new team: this one gets the privileges first.
		var privs []string
		for _, table := range []string{"Contact", "Account"} {
			for _, a := range []string{"Create", "Read", "Write", "Delete", "Append", "AppendTo", "Assign", "Share"} {
				privs = append(privs, "prv"+a+table)
			}
		}
		if err := env.sb.Dataverse.GrantTeamPrivileges(env.sb.Info.Dataverse.TeamWithoutPrivilegesID, "", privs...); err != nil {
			t.Fatal(err)
		}
	}},
	{name: "destroy", config: planBase.hcl, destroy: true},
	{name: "rotate-secret", writeOnly: true, applied: func(b planBase) string { return writeOnlyBase(b, 1) },
		config: func(b planBase) string { return writeOnlyBase(b, 2) }},
	// Last: it changes the control plane behind Terraform's back.
	{name: "drift", config: planBase.hcl, before: func(t *testing.T, env *syncEnv) {
		ctx := t.Context()
		c, err := env.Client.FindConnector(ctx, "salesforce-prod")
		if err != nil {
			t.Fatal(err)
		}
		ms, err := env.Client.ListMappings(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if m.SourceTable == "Contact" {
				spec := m.TableConfig
				spec.ExcludeColumns = append(spec.ExcludeColumns, "fax")
				if _, err := env.Client.UpdateMapping(ctx, m.ID, spec); err != nil {
					t.Fatal(err)
				}
			}
		}
	}},
}

// TestAccPlanSummary_goldenPlans applies a base configuration to a real control plane and sandbox, then plans
// each scenario with the Terraform CLI under test, saves the plan, reads it back with `show -json`, and
// summarizes it with the record counts the control plane gives. The summaries must equal the golden ones of
// internal/plansummary/testdata (with -update, this run writes them, with the normalized plans and counts the
// package's own tests replay offline). Under Terraform and OpenTofu alike: the summary reads either's plans.
func TestAccPlanSummary_goldenPlans(t *testing.T) {
	env := startSyncEnv(t, syncOptions{contacts: 240, accounts: 30})
	base := planBase{env: env, team: env.sb.Info.Dataverse.TeamID, contactCols: baseContactColumns, exclude: baseExclude}
	writeOnly := writeOnlySupported(t)
	// The provider runs in this process: it reads the endpoint and token from this process's environment.
	t.Setenv(EnvEndpoint, env.URL)
	t.Setenv(EnvToken, accToken)
	w := newTFWorkdir(t)
	w.env = append(w.env, "TF_VAR_dv_secret="+env.sb.Info.Dataverse.ClientSecret) // the write-only scenario's ephemeral variable
	w.Apply(base.hcl())
	if run := w.Plan(base.hcl()); run.Changes {
		t.Fatalf("the base configuration plans changes after apply:\n%s", run.Output)
	}
	norm := newPlanNormalizer(env)
	for _, sc := range planScenarios {
		if sc.writeOnly && !writeOnly {
			t.Logf("%s: skipped, the CLI under test has no write-only arguments", sc.name)
			continue
		}
		func() {
			if sc.applied != nil {
				w.Apply(sc.applied(base))
				defer w.Apply(base.hcl())
			}
			if sc.before != nil {
				sc.before(t, env)
			}
			raw := w.savedPlanJSON(sc.config(base), sc.destroy)
			plan := norm.normalize(raw)
			rec := &recordingEstimator{live: plansummary.ClientEstimator{Client: env.Client}, counts: map[string]int64{}, realID: norm.original}
			s, err := plansummary.Summarize(t.Context(), plan, plansummary.Options{Estimator: rec})
			if err != nil {
				t.Fatalf("summarizing the real plan: %v", err)
			}
			counts, _ := json.MarshalIndent(rec.counts, "", "  ")
			files := map[string][]byte{
				sc.name + ".md":   s.Markdown(),
				sc.name + ".json": s.JSON(),
			}
			if *updateGolden {
				files[sc.name+".plan.json"] = plan
				files[sc.name+".counts.json"] = append(counts, '\n')
				for name, b := range files {
					if err := os.WriteFile(filepath.Join(goldenDir, name), b, 0o600); err != nil {
						t.Fatal(err)
					}
				}
				t.Logf("wrote %s/%s.*", goldenDir, sc.name)
				return
			}
			for name, got := range files {
				want, err := os.ReadFile(filepath.Join(goldenDir, name))
				if err != nil {
					t.Fatalf("%v (run with -update to write the golden files)", err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("the summary of the real %s plan differs from %s:\n--- got\n%s\n--- want\n%s", sc.name, name, got, want)
				}
			}
		}()
	}
}

// savedPlanJSON plans config into a plan file (a destroy plan with destroy) and returns `show -json` of it.
func (w *tfWorkdir) savedPlanJSON(config string, destroy bool) []byte {
	w.t.Helper()
	w.write(config)
	args := []string{"plan", "-input=false", "-lock=false", "-no-color", "-out=tfplan"}
	if destroy {
		args = append(args, "-destroy")
	}
	w.run(0, args...)
	ctx, cancel := context.WithTimeout(w.t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Getenv("TF_ACC_TERRAFORM_PATH"), "show", "-json", "tfplan")
	cmd.Dir, cmd.Env = w.dir, w.env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		w.t.Fatalf("show -json tfplan: %v\n%s", err, stderr.String())
	}
	return out
}

// recordingEstimator asks the control plane and keeps the counts by source table, for the golden files.
type recordingEstimator struct {
	live   plansummary.Estimator
	counts map[string]int64
	// realID turns the normalized connector ID of the plan back into the control plane's.
	realID func(string) string
}

func (r *recordingEstimator) EstimateRecords(ctx context.Context, connectorID string, t mapping.TableConfig) (int64, error) {
	n, err := r.live.EstimateRecords(ctx, r.realID(connectorID), t)
	if err == nil {
		r.counts[t.SourceTable] = n
	}
	return n, err
}

// planNormalizer replaces what differs from run to run in a plan (IDs, ports, temporary paths, GUIDs, times,
// the CLI's version) with stable placeholders, so the committed plans and their summaries do not churn. The
// same value always gets the same placeholder within a run.
type planNormalizer struct {
	literal  *strings.Replacer
	patterns []*regexp.Regexp
	seen     map[string]string
	counts   map[string]int
}

func newPlanNormalizer(env *syncEnv, extraPaths ...string) *planNormalizer {
	// The teams a summary names, by a GUID of their own; the other GUIDs are numbered as they appear.
	pairs := []string{env.sbDir, "/sandbox",
		env.sb.Info.Dataverse.TeamID, "11111111-1111-4111-8111-111111111111",
		env.sb.Info.Dataverse.TeamWithoutPrivilegesID, "22222222-2222-4222-8222-222222222222"}
	for i, p := range extraPaths {
		pairs = append(pairs, p, fmt.Sprintf("/secrets/%d", i+1))
	}
	return &planNormalizer{
		literal: strings.NewReplacer(pairs...),
		patterns: []*regexp.Regexp{
			regexp.MustCompile(`\b(con|map|bak|rst)_[0-9a-f]{32}\b`),
			regexp.MustCompile(`127\.0\.0\.1:[0-9]+`),
			regexp.MustCompile(`\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b`),
			regexp.MustCompile(`\b[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})`),
			regexp.MustCompile(`"terraform_version": ?"[^"]*"`),
		},
		seen:   map[string]string{},
		counts: map[string]int{},
	}
}

// original returns the value a placeholder stands for (the placeholder itself when it stands for none).
func (n *planNormalizer) original(placeholder string) string {
	for v, p := range n.seen {
		if p == placeholder {
			return v
		}
	}
	return placeholder
}

func (n *planNormalizer) normalize(plan []byte) []byte {
	s := n.literal.Replace(string(plan))
	for i, re := range n.patterns {
		s = re.ReplaceAllStringFunc(s, func(v string) string {
			if p, ok := n.seen[v]; ok {
				return p
			}
			if v == "11111111-1111-4111-8111-111111111111" || v == "22222222-2222-4222-8222-222222222222" {
				return v // the teams, already named
			}
			n.counts[fmt.Sprint(i)]++
			k := n.counts[fmt.Sprint(i)]
			var p string
			switch i {
			case 0:
				prefix, _, _ := strings.Cut(v, "_")
				p = fmt.Sprintf("%s_%032d", prefix, k)
			case 1:
				p = fmt.Sprintf("127.0.0.1:%d", 40000+k)
			case 2:
				p = fmt.Sprintf("00000000-0000-4000-8000-%012d", k)
			case 3:
				p = "2026-01-01T00:00:00Z"
			case 4:
				p = `"terraform_version":"0.0.0"`
			}
			n.seen[v] = p
			return p
		})
	}
	// Indented, so the committed plans diff line by line.
	var out bytes.Buffer
	if err := json.Indent(&out, []byte(s), "", " "); err != nil {
		return []byte(s)
	}
	out.WriteByte('\n')
	return out.Bytes()
}
