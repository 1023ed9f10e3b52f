package plansummary

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// The resource types of the crmsync provider.
const (
	typeConnector  = "crmsync_connector"
	typeMapping    = "crmsync_table_mapping"
	typeActivation = "crmsync_activation"
)

// plan is the part of `terraform show -json PLANFILE` (and `tofu show -json PLANFILE`) the summary reads:
// https://developer.hashicorp.com/terraform/internals/json-format. Values stay untyped (any): a document of
// any shape must give a summary or an error, never a panic.
type plan struct {
	FormatVersion    string           `json:"format_version"`
	TerraformVersion string           `json:"terraform_version"`
	ResourceChanges  []resourceChange `json:"resource_changes"`
	ResourceDrift    []resourceChange `json:"resource_drift"`
	PlannedValues    json.RawMessage  `json:"planned_values"`
	Configuration    *configuration   `json:"configuration"`
	Errored          bool             `json:"errored"`
	// Values is set in a state document (`terraform show -json` without a plan file), never in a plan.
	Values json.RawMessage `json:"values"`
}

type resourceChange struct {
	Address       string `json:"address"`
	ModuleAddress string `json:"module_address"`
	Mode          string `json:"mode"`
	Type          string `json:"type"`
	Name          string `json:"name"`
	Change        change `json:"change"`
	ActionReason  string `json:"action_reason"`
}

type change struct {
	Actions         []string `json:"actions"`
	Before          any      `json:"before"`
	After           any      `json:"after"`
	AfterUnknown    any      `json:"after_unknown"`
	BeforeSensitive any      `json:"before_sensitive"`
	AfterSensitive  any      `json:"after_sensitive"`
	ReplacePaths    any      `json:"replace_paths"`
}

type configuration struct {
	RootModule *configModule `json:"root_module"`
}

type configModule struct {
	Resources   []configResource      `json:"resources"`
	ModuleCalls map[string]moduleCall `json:"module_calls"`
}

type moduleCall struct {
	Module *configModule `json:"module"`
}

type configResource struct {
	Address     string         `json:"address"`
	Mode        string         `json:"mode"`
	Type        string         `json:"type"`
	Expressions map[string]any `json:"expressions"`
}

// ErrNotAPlan is returned, wrapped, for a document that is not a JSON plan.
var ErrNotAPlan = errors.New("not a plan in `terraform show -json` format")

// parsePlan decodes and checks a JSON plan.
func parsePlan(b []byte) (*plan, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, fmt.Errorf("%w: the document is empty; give the output of `terraform show -json PLANFILE`", ErrNotAPlan)
	}
	var p plan
	if err := json.Unmarshal(b, &p); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			return nil, fmt.Errorf("%w: invalid JSON at byte %d: %s", ErrNotAPlan, syn.Offset, syn.Error())
		case errors.As(err, &typ):
			return nil, fmt.Errorf("%w: %s is a JSON %s, not %s", ErrNotAPlan, fieldName(typ), typ.Value, kindName(typ.Type))
		}
		return nil, fmt.Errorf("%w: %s", ErrNotAPlan, err.Error())
	}
	if p.FormatVersion == "" {
		return nil, fmt.Errorf("%w: it has no format_version; give the output of `terraform show -json PLANFILE` (or `tofu show -json PLANFILE`) for a plan saved with -out", ErrNotAPlan)
	}
	major, _, _ := strings.Cut(p.FormatVersion, ".")
	if major != "1" {
		return nil, fmt.Errorf("%w: format_version %q is not supported (1.x is)", ErrNotAPlan, truncate(p.FormatVersion, 20))
	}
	if p.ResourceChanges == nil && p.PlannedValues == nil && p.Values != nil {
		return nil, fmt.Errorf("%w: this is a state (the output of `terraform show -json` without a plan file); save a plan with `terraform plan -out=PLANFILE` and give `terraform show -json PLANFILE`", ErrNotAPlan)
	}
	if p.Errored {
		return nil, fmt.Errorf("%w: the plan errored (Terraform could not finish it), so it tells nothing reliable about the changes; fix the plan's errors first", ErrNotAPlan)
	}
	return &p, nil
}

func fieldName(e *json.UnmarshalTypeError) string {
	if e.Field == "" {
		return "the document"
	}
	return "field " + e.Field
}

func kindName(t reflect.Type) string {
	if t == nil {
		return "the expected type"
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	default:
		return t.Kind().String()
	}
}

// action is a resource change's action, in one word.
type action string

const (
	actCreate  action = "create"
	actUpdate  action = "update"
	actReplace action = "replace"
	actDelete  action = "delete"
	actNone    action = "none"
	actRead    action = "read"
)

func actionOf(actions []string) action {
	switch {
	case len(actions) == 2 && slices.Contains(actions, "create") && slices.Contains(actions, "delete"):
		return actReplace
	case len(actions) == 1 && actions[0] == "create":
		return actCreate
	case len(actions) == 1 && actions[0] == "update":
		return actUpdate
	case len(actions) == 1 && actions[0] == "delete":
		return actDelete
	case len(actions) == 1 && actions[0] == "read":
		return actRead
	}
	return actNone
}

// value helpers: untyped JSON navigated without assertions that can panic.

// at returns the value at path in v (object keys), or nil.
func at(v any, path ...string) any {
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// str returns the string at path, or "" when it is not a string.
func str(v any, path ...string) string {
	s, _ := at(v, path...).(string)
	return s
}

// scalar formats a JSON scalar (string, number, boolean) for display; "" for null and anything else.
func scalar(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case json.Number:
		return x.String()
	}
	return ""
}

// marked reports whether the mirror structure m (after_unknown, before_sensitive, after_sensitive) marks path or
// one of its parents true.
func marked(m any, path ...string) bool {
	for _, k := range path {
		if b, ok := m.(bool); ok {
			return b
		}
		mm, ok := m.(map[string]any)
		if !ok {
			return false
		}
		m = mm[k]
	}
	if b, ok := m.(bool); ok {
		return b
	}
	return false
}

// sortedKeys returns the keys of the object v, sorted.
func sortedKeys(v any) []string {
	m, _ := v.(map[string]any)
	return slices.Sorted(maps.Keys(m))
}

// changedKeys lists the keys of two objects whose values differ, sorted.
func changedKeys(before, after any) []string {
	keys := map[string]bool{}
	for _, k := range sortedKeys(before) {
		keys[k] = true
	}
	for _, k := range sortedKeys(after) {
		keys[k] = true
	}
	var out []string
	for k := range keys {
		if !reflect.DeepEqual(at(before, k), at(after, k)) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// replacePaths returns the first element of each replace path: the top-level attributes that force the
// replacement, and their nested attribute when the path has one (salesforce.login_url).
func replacePaths(v any) []string {
	list, _ := v.([]any)
	seen := map[string]bool{}
	var out []string
	for _, p := range list {
		steps, _ := p.([]any)
		var parts []string
		for _, s := range steps {
			if name, ok := s.(string); ok {
				parts = append(parts, name)
			}
			if len(parts) == 2 {
				break
			}
		}
		if len(parts) == 0 {
			continue
		}
		name := strings.Join(parts, ".")
		if !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// references returns, per resource address (module prefix included), the addresses of crmsync_connector
// resources its connector_id expression refers to: how a table mapping or an activation of a connector created
// by this plan (whose ID is not known yet) is matched to it.
func (p *plan) references() map[string]string {
	out := map[string]string{}
	if p.Configuration == nil {
		return out
	}
	var walk func(prefix string, m *configModule, depth int)
	walk = func(prefix string, m *configModule, depth int) {
		if m == nil || depth > 32 {
			return
		}
		for _, r := range m.Resources {
			refs, _ := at(r.Expressions, "connector_id", "references").([]any)
			for _, ref := range refs {
				s, _ := ref.(string)
				if strings.HasPrefix(s, typeConnector+".") && strings.Count(s, ".") == 1 {
					out[prefix+r.Address] = prefix + s
					break
				}
			}
		}
		names := slices.Sorted(maps.Keys(m.ModuleCalls))
		for _, name := range names {
			walk(prefix+"module."+name+".", m.ModuleCalls[name].Module, depth+1)
		}
	}
	walk("", p.Configuration.RootModule, 0)
	return out
}

// configAddress is the address of a resource instance's configuration block: the instance key removed
// (crmsync_table_mapping.t["Contact"] → crmsync_table_mapping.t), module instance keys too.
func configAddress(addr string) string {
	var b strings.Builder
	depth := 0
	for _, r := range addr {
		switch {
		case r == '[':
			depth++
		case r == ']':
			if depth > 0 {
				depth--
			}
		case depth == 0:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
