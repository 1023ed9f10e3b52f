package e2e_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"sigs.k8s.io/yaml"
)

// series is one scraped sample: its labels and value (a histogram's count).
type series struct {
	labels map[string]string
	value  float64
}

// scrape reads the control plane's /metrics and returns the families by name, with the raw text.
func (e *env) scrape() (map[string]*dto.MetricFamily, string) {
	e.t.Helper()
	req, err := http.NewRequestWithContext(e.t.Context(), http.MethodGet, "http://"+e.addr+"/metrics", nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		e.t.Fatalf("GET /metrics: %d, %v", resp.StatusCode, err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(b)))
	if err != nil {
		e.t.Fatalf("parsing /metrics: %v", err)
	}
	return fams, string(b)
}

// find returns the samples of a family whose labels include want.
func find(fams map[string]*dto.MetricFamily, name string, want map[string]string) []series {
	var out []series
	f := fams[name]
	if f == nil {
		return nil
	}
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		ok := true
		for k, v := range want {
			ok = ok && labels[k] == v
		}
		if !ok {
			continue
		}
		var v float64
		switch {
		case m.Gauge != nil:
			v = m.GetGauge().GetValue()
		case m.Counter != nil:
			v = m.GetCounter().GetValue()
		case m.Histogram != nil:
			v = float64(m.GetHistogram().GetSampleCount())
		}
		out = append(out, series{labels: labels, value: v})
	}
	return out
}

// TestMetricsCoverEveryConnectorAndTheDeployFilesUseThem: `crmsync serve` with the sandbox, a
// connector activated and loaded, changes streamed: /metrics serves the connector's sync labelled by connector
// and table with plausible values (the agents serve has no --listen, so the control plane is the only place
// they can come from), the names pass the Prometheus linter, and the Grafana dashboard and alert rules in
// deploy/ name only metrics that are served.
func TestMetricsCoverEveryConnectorAndTheDeployFilesUseThem(t *testing.T) {
	const contacts, accounts = 1500, 300
	e := newEnv(t, contacts, accounts)
	conn, _ := e.createConnector(e.connectorSpec("e2e-metrics", e.sb.Info.Dataverse.TeamID))
	if _, err := e.c.SetActivation(t.Context(), conn.ID, true); err != nil {
		t.Fatal(err)
	}
	e.settle(conn.ID, 2*time.Minute)
	// Changes streamed after the load: the latency histogram counts them.
	if _, err := e.sb.Salesforce.Mutate("Contact", 40, ""); err != nil {
		t.Fatal(err)
	}
	st := e.settle(conn.ID, 2*time.Minute)
	var contactWritten float64
	for _, ts := range st.Tables {
		if ts.Table == "Contact" {
			contactWritten = float64(ts.Written)
		}
	}
	// A reconciliation, so its results are served too.
	req, err := e.c.Reconcile(t.Context(), conn.ID)
	if err != nil {
		t.Fatal(err)
	}
	e.waitFor(2*time.Minute, "the reconciliation's results", func() bool {
		st, ok := e.statusOK(conn.ID)
		if !ok || len(st.Tables) != 2 {
			return false
		}
		for _, ts := range st.Tables {
			if ts.Reconcile == nil || ts.Reconcile.RequestID < req.RequestID || ts.Reconcile.FinishedAt.IsZero() {
				return false
			}
		}
		return true
	})
	// The status is reported by heartbeat; the next scrape reads the same store.
	fams, text := e.scrape()
	c := map[string]string{"connector": "e2e-metrics"}
	with := func(extra ...string) map[string]string {
		out := map[string]string{"connector": "e2e-metrics"}
		for i := 0; i+1 < len(extra); i += 2 {
			out[extra[i]] = extra[i+1]
		}
		return out
	}
	check := func(name string, labels map[string]string, ok func(v float64) bool, what string) {
		t.Helper()
		s := find(fams, name, labels)
		if len(s) == 0 {
			t.Errorf("%s%v is not served", name, labels)
			return
		}
		for _, x := range s {
			if !ok(x.value) {
				t.Errorf("%s%v = %v; want %s", name, x.labels, x.value, what)
			}
		}
	}
	atLeast := func(n float64) func(float64) bool { return func(v float64) bool { return v >= n } }
	equals := func(n float64) func(float64) bool { return func(v float64) bool { return v == n } }
	between := func(lo, hi float64) func(float64) bool { return func(v float64) bool { return v >= lo && v <= hi } }

	check("crmsync_build_info", nil, equals(1), "1")
	check("crmsync_connector_state", with("state", "streaming"), equals(1), "1")
	check("crmsync_connector_state", with("state", "failed"), equals(0), "0")
	check("crmsync_connector_active", c, equals(1), "1")
	check("crmsync_connector_revision", c, equals(float64(st.LatestRevision)), "the latest revision")
	check("crmsync_connector_deployed_revision", c, equals(float64(st.LatestRevision)), "the latest revision")
	check("crmsync_agent_up", c, equals(1), "1")
	check("crmsync_agent_heartbeat_age_seconds", c, between(0, 10), "a few seconds at most")
	for table, n := range map[string]float64{"Contact": contacts, "Account": accounts} {
		check("crmsync_records_total", with("table", table, "outcome", "written"), atLeast(n), "at least the loaded rows")
		check("crmsync_records_dead_lettered", with("table", table), equals(0), "0")
		check("crmsync_dead_letter_events_total", with("table", table), equals(0), "0")
		check("crmsync_load_rows_done", with("table", table), equals(n), "the table's rows")
		check("crmsync_load_rows_estimated", with("table", table), equals(n), "the table's rows")
		check("crmsync_table_phase", with("table", table, "phase", "streaming"), equals(1), "1")
		check("crmsync_cdc_lag_seconds", with("table", table), between(0, 5), "small once settled")
		check("crmsync_replay_age_seconds", with("table", table), between(0, 120), "recent")
		check("crmsync_replay_retention_seconds", with("table", table), equals((72 * time.Hour).Seconds()), "72 h")
		check("crmsync_dead_letters", with("table", table), equals(0), "0")
	}
	check("crmsync_records_total", with("table", "Contact", "outcome", "written"), atLeast(contactWritten), "the status's written count")
	check("crmsync_reconcile_match", with("table", "Contact"), equals(1), "1: both sides equal")
	check("crmsync_reconcile_differences", with("table", "Contact", "kind", "missing"), equals(0), "0")
	check("crmsync_reconcile_last_finished_timestamp_seconds", with("table", "Contact"), between(float64(time.Now().Add(-5*time.Minute).Unix()), float64(time.Now().Unix()+1)), "within the last minutes")
	check("crmsync_out_of_band_edits_total", with("table", "Contact"), equals(0), "0: nobody edited Dataverse")
	check("crmsync_sync_api_throttled_total", with("side", "dataverse"), equals(0), "0: the sandbox did not throttle")
	check("crmsync_cdc_latency_seconds", with("table", "Contact"), atLeast(40), "at least the 40 streamed changes")
	check("crmsync_sync_api_calls_total", with("side", "salesforce", "kind", "bulk.create_job"), atLeast(2), "a Bulk job per table")
	if len(find(fams, "crmsync_sync_api_calls_total", with("side", "dataverse"))) == 0 {
		t.Error("no Dataverse call is counted")
	}
	check("crmsync_http_requests_total", map[string]string{"route": "POST /v1/agent/leases/{id}/heartbeat", "code": "200"}, atLeast(1), "the agent's heartbeats")

	problems, err := promlint.New(strings.NewReader(text)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "crmsync_") {
			t.Errorf("promlint: %s: %s", p.Metric, p.Text)
		}
	}

	// Every crmsync metric the dashboard and the alert rules use is served.
	served := map[string]bool{}
	for name, f := range fams {
		served[name] = true
		if f.GetType() == dto.MetricType_HISTOGRAM {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				served[name+suffix] = true
			}
		}
	}
	exprs := deployExpressions(t)
	if len(exprs) < 10 {
		t.Fatalf("only %d expressions found in deploy/", len(exprs))
	}
	used := map[string]bool{}
	for where, expr := range exprs {
		names := metricNameRe.FindAllString(expr, -1)
		if len(names) == 0 {
			t.Errorf("%s names no crmsync metric: %s", where, expr)
		}
		for _, n := range names {
			used[n] = true
			if !served[n] {
				t.Errorf("%s uses %s, which the control plane does not serve: %s", where, n, expr)
			}
		}
	}
	var list []string
	for n := range used {
		list = append(list, n)
	}
	sort.Strings(list)
	t.Logf("deploy/ uses %d metrics, all served: %s", len(list), strings.Join(list, " "))
}

// metricNameRe finds crmsync metric names in a PromQL expression.
var metricNameRe = regexp.MustCompile(`\bcrmsync_[a-z0-9_]+\b`)

// deployExpressions returns the PromQL expressions of deploy/: every alert rule's expr and every Grafana
// panel target's expr (and the template variables' queries), keyed by where they are.
func deployExpressions(t *testing.T) map[string]string {
	t.Helper()
	root := filepath.Join("..", "..", "..", "..", "deploy")
	out := map[string]string{}

	b, err := os.ReadFile(filepath.Join(root, "prometheus", "crmsync-alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Alert       string            `json:"alert"`
				Expr        string            `json:"expr"`
				For         string            `json:"for"`
				Labels      map[string]string `json:"labels"`
				Annotations map[string]string `json:"annotations"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.UnmarshalStrict(b, &rules); err != nil {
		t.Fatalf("deploy/prometheus/crmsync-alerts.yml: %v", err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("alert rule %+v lacks a name, an expression, a severity or a summary", r)
			}
			out["alert "+r.Alert] = r.Expr
		}
	}
	for _, a := range []string{"CrmsyncConnectorFailed", "CrmsyncCDCLagHigh", "CrmsyncReplayNearRetention", "CrmsyncDeadLettersGrowing"} {
		if _, ok := out["alert "+a]; !ok {
			t.Errorf("the alert rules lack %s", a)
		}
	}

	b, err = os.ReadFile(filepath.Join(root, "grafana", "crmsync-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("deploy/grafana/crmsync-dashboard.json: %v", err)
	}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for i, tg := range p.Targets {
			out["panel "+p.Title+" #"+string(rune('A'+i))] = tg.Expr
		}
	}
	for _, v := range dash.Templating.List {
		if v.Definition != "" {
			out["variable "+v.Name] = v.Definition
		}
	}
	return out
}
