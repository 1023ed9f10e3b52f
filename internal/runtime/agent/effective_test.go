package agent_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
)

// The agent compiles the effective columns its configuration carries (the control plane resolved them once,
// when it stored the revision); it does not resolve the declaration again. Here the Contact declaration maps
// department (predefined), but the columns given leave it out: no row may get a department.
func TestTheAgentWritesTheEffectiveColumnsItIsGiven(t *testing.T) {
	e := newEnv(t, 40, 5)
	cfg := e.cfg
	cfg.Resolve()
	for i := range cfg.Tables {
		if cfg.Tables[i].SourceTable == "Contact" {
			before := len(cfg.Tables[i].EffectiveColumns)
			cfg.Tables[i].EffectiveColumns = slices.DeleteFunc(slices.Clone(cfg.Tables[i].EffectiveColumns),
				func(c mapping.Column) bool { return c.Destination == "department" })
			if len(cfg.Tables[i].EffectiveColumns) != before-1 {
				t.Fatalf("the predefined Contact mapping has no department column to leave out: %v", cfg.Tables[i].EffectiveColumns)
			}
		}
	}
	a, err := newQuiet(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("agent ended with %v", err)
		}
	}()
	waitFor(t, time.Minute, "the load to finish", func() bool { return streaming(a.Status()) })

	rows, err := e.sb.Dataverse.Rows("contact", "", 500)
	if err != nil {
		t.Fatal(err)
	}
	var export strings.Builder
	if err := e.sb.Salesforce.Export(&export, "Contact"); err != nil {
		t.Fatal(err)
	}
	withDepartment := strings.Count(export.String(), `"Department":"`)
	if len(rows) == 0 || withDepartment == 0 {
		t.Fatalf("%d contact rows written, %d Salesforce contacts with a department: nothing to check", len(rows), withDepartment)
	}
	for _, row := range rows {
		if v := row["department"]; v != nil && v != "" {
			t.Fatalf("contact %v has department %q: the agent wrote a column its configuration's effective columns leave out", row["contactid"], v)
		}
	}
}
