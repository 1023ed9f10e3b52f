// Command demo is `make demo`: crmsync end to end on one machine. It starts the Salesforce and Dataverse
// sandbox and a control plane (`crmsync serve`, whose supervisor runs the sync agent), applies
// examples/quickstart with the locally built provider through a dev_overrides CLI configuration, shows the
// initial load as it progresses and the connector's status, makes changes in the Salesforce sandbox and shows
// them arriving in Dataverse, prints a summary, and stops everything it started, also on failure or Ctrl-C.
//
// Usage (from the repository root, after `make build` and `make tools`):
//
//	go run ./scripts/demo [--dir .demo] [--bin bin] [--contacts 20000] [--accounts 2000]
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/client"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping/sfid"
)

const connectorName = "quickstart" // the quick start's default

func main() {
	var o options
	flag.StringVar(&o.dir, "dir", ".demo", "directory for the demo's state and logs (emptied first)")
	flag.StringVar(&o.bin, "bin", "bin", "directory holding crmsync, terraform-provider-crmsync and terraform")
	flag.IntVar(&o.contacts, "contacts", 20000, "Salesforce contacts to seed")
	flag.IntVar(&o.accounts, "accounts", 2000, "Salesforce accounts to seed")
	flag.DurationVar(&o.timeout, "timeout", 15*time.Minute, "bound of the whole demo")
	flag.Parse()

	// Ctrl-C, a kill, or the terminal going away (SIGHUP) stop the demo cleanly: it stops what it started.
	// SIGPIPE is caught, not fatal: with `make demo | tee log`, Ctrl-C also kills tee, and the demo's next
	// write to stdout would otherwise kill it before it stops its children; writes just fail instead.
	signal.Ignore(syscall.SIGPIPE)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	d := &demo{options: o, started: time.Now()}
	err := d.run(ctx)
	interrupted := ctx.Err() != nil && errors.Is(context.Cause(ctx), context.Canceled)
	cancel()
	stop()
	d.stopAll()
	switch {
	case interrupted:
		fmt.Fprintf(os.Stderr, "\ndemo interrupted; everything it started is stopped\nlogs: %s\n", d.dir)
		os.Exit(130)
	case err != nil:
		fmt.Fprintf(os.Stderr, "\ndemo failed: %v\nlogs: %s\n", err, d.dir)
		os.Exit(1)
	}
}

// interruptOnce makes cmd a process group of its own, so the terminal's Ctrl-C does not reach it, and has
// the context's end send it one interrupt: Terraform sees a single Ctrl-C (two make it abandon its work
// mid-flight, "Two interrupts received ... data loss may have occurred") and stops as it would in a
// terminal.
func interruptOnce(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 60 * time.Second
}

type options struct {
	dir, bin           string
	contacts, accounts int
	timeout            time.Duration
}

// demo holds what the demo started, so that stopAll can stop it whatever happened.
type demo struct {
	options
	started time.Time
	procs   []*proc

	sandbox  sandboxInfo
	admin    *http.Client
	endpoint string
	token    string
	cp       *client.Client
	tfDir    string
	tfEnv    []string

	// figures for the summary
	loadTime      time.Duration
	loadedRecords int64
	planEmpty     bool
	changes       []string
	changeKinds   []string
	changeLatency time.Duration
	changesMade   int
}

// proc is a process the demo started.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

func (d *demo) run(ctx context.Context) error {
	var err error
	if d.dir, err = filepath.Abs(d.dir); err != nil {
		return err
	}
	if d.bin, err = filepath.Abs(d.bin); err != nil {
		return err
	}
	for _, b := range []string{"crmsync", "terraform-provider-crmsync", "terraform"} {
		if _, err := os.Stat(filepath.Join(d.bin, b)); err != nil {
			return fmt.Errorf("%s/%s is missing: run make build and make tools (make demo does both)", d.bin, b)
		}
	}
	if err := os.RemoveAll(d.dir); err != nil {
		return err
	}
	if err := os.MkdirAll(d.dir, 0o700); err != nil {
		return err
	}
	steps := []struct {
		title string
		fn    func(context.Context) error
	}{
		{"Starting the Salesforce and Dataverse sandbox", d.startSandbox},
		{"Starting the control plane (crmsync serve)", d.startControlPlane},
		{"terraform apply examples/quickstart", d.apply},
		{"terraform plan right after the apply", d.planAgain},
		{"crmsync status " + connectorName, d.showStatus},
		{"Changing records in the Salesforce sandbox", d.changeSalesforce},
		{"Summary", d.summary},
	}
	for _, s := range steps {
		fmt.Printf("\n==> %s\n", s.title)
		if err := s.fn(ctx); err != nil {
			return fmt.Errorf("%s: %w", strings.ToLower(s.title[:1])+s.title[1:], err)
		}
	}
	return nil
}

// start starts a process whose output goes to DIR/<name>.log.
func (d *demo) start(name string, env []string, args ...string) (*proc, error) {
	logf, err := os.Create(filepath.Join(d.dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(args[0], args[1:]...) //nolint:gosec // the binaries the demo built, with its own arguments
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group: Ctrl-C in the terminal reaches the demo, which stops its children in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		_ = logf.Close()
		close(p.done)
	}()
	d.procs = append(d.procs, p)
	return p, nil
}

// stopAll stops what the demo started, newest first: the control plane drains its agents before the sandbox
// goes away.
func (d *demo) stopAll() {
	if len(d.procs) == 0 {
		return
	}
	fmt.Println("\n==> Stopping everything the demo started")
	for i := len(d.procs) - 1; i >= 0; i-- {
		p := d.procs[i]
		select {
		case <-p.done:
			continue
		default:
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
			fmt.Printf("    stopped %s\n", p.name)
		case <-time.After(60 * time.Second):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
			fmt.Printf("    killed %s (it did not stop within 60s of SIGTERM)\n", p.name)
		}
	}
	fmt.Printf("    logs and state: %s\n", d.dir)
}

// sandboxInfo is the part of sandbox.json the demo reads.
type sandboxInfo struct {
	Salesforce struct {
		LoginURL string `json:"login_url"`
		CAFile   string `json:"ca_file"`
	} `json:"salesforce"`
	Dataverse struct {
		EnvironmentURL string `json:"environment_url"`
	} `json:"dataverse"`
	AdminURL string `json:"admin_url"`
}

func (d *demo) startSandbox(ctx context.Context) error {
	dir := filepath.Join(d.dir, "sandbox")
	p, err := d.start("sandbox", nil, filepath.Join(d.bin, "crmsync"), "sandbox", "--dir", dir,
		"--contacts", fmt.Sprint(d.contacts), "--accounts", fmt.Sprint(d.accounts))
	if err != nil {
		return err
	}
	path := filepath.Join(dir, "sandbox.json")
	if err := waitUntil(ctx, p, 2*time.Minute, "sandbox.json", func() bool {
		b, err := os.ReadFile(path)
		return err == nil && json.Unmarshal(b, &d.sandbox) == nil
	}); err != nil {
		return err
	}
	d.admin = &http.Client{Timeout: 30 * time.Second}
	if d.sandbox.Salesforce.CAFile != "" {
		pem, err := os.ReadFile(d.sandbox.Salesforce.CAFile)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		d.admin.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	}
	fmt.Printf("    Salesforce %s, Dataverse %s (%d contacts, %d accounts seeded)\n", d.sandbox.Salesforce.LoginURL,
		d.sandbox.Dataverse.EnvironmentURL, d.contacts, d.accounts)
	fmt.Printf("    %s\n", path)
	return nil
}

var listeningRe = regexp.MustCompile(`listening on (\S+)`)

func (d *demo) startControlPlane(ctx context.Context) error {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	d.token = hex.EncodeToString(b)
	// The sandbox listens on loopback, which is no real service's host, and the quick start references its
	// key and CA files: the demo's control plane allows both, as an operator would for a private endpoint.
	sandboxDir := filepath.Join(d.dir, "sandbox")
	p, err := d.start("control-plane", []string{"CRMSYNC_TOKEN=" + d.token}, filepath.Join(d.bin, "crmsync"), "serve",
		"--data-dir", filepath.Join(d.dir, "control-plane"), "--listen", "127.0.0.1:0", "--lease-ttl", "5s",
		"--allow-host", "127.0.0.1", "--allow-ref-dir", sandboxDir)
	if err != nil {
		return err
	}
	logPath := filepath.Join(d.dir, "control-plane.log")
	if err := waitUntil(ctx, p, time.Minute, "the control plane to listen", func() bool {
		b, _ := os.ReadFile(logPath)
		if m := listeningRe.FindSubmatch(b); m != nil {
			d.endpoint = string(m[1])
			return true
		}
		return false
	}); err != nil {
		return err
	}
	if d.cp, err = client.New(client.Config{Endpoint: d.endpoint, Token: d.token, UserAgent: "crmsync-demo"}); err != nil {
		return err
	}
	if err := waitUntil(ctx, p, 30*time.Second, "the control plane's health check", func() bool {
		_, err := d.cp.Health(ctx)
		return err == nil
	}); err != nil {
		return err
	}
	fmt.Printf("    %s (token in the environment of the commands below only)\n", d.endpoint)
	return nil
}

func (d *demo) apply(ctx context.Context) error {
	d.tfDir = filepath.Join(d.dir, "terraform")
	if err := os.MkdirAll(d.tfDir, 0o700); err != nil {
		return err
	}
	src, err := os.ReadFile(filepath.Join("examples", "quickstart", "main.tf"))
	if err != nil {
		return fmt.Errorf("run the demo from the repository root: %w", err)
	}
	if err := os.WriteFile(filepath.Join(d.tfDir, "main.tf"), src, 0o600); err != nil { //nolint:gosec // under the demo directory given on the command line
		return err
	}
	// The locally built provider, through dev_overrides: no registry, no terraform init.
	rc := filepath.Join(d.tfDir, "dev.tfrc")
	cfg := fmt.Sprintf("provider_installation {\n  dev_overrides {\n    \"registry.terraform.io/crmsync/crmsync\" = %q\n  }\n  direct {}\n}\n", d.bin)
	if err := os.WriteFile(rc, []byte(cfg), 0o600); err != nil {
		return err
	}
	d.tfEnv = []string{"TF_CLI_CONFIG_FILE=" + rc, "TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1",
		"CRMSYNC_ENDPOINT=" + d.endpoint, "CRMSYNC_TOKEN=" + d.token,
		"TF_VAR_sandbox_json=" + filepath.Join(d.dir, "sandbox", "sandbox.json")}
	fmt.Printf("    %s (dev_overrides: %s)\n\n", filepath.Join(d.tfDir, "main.tf"), d.bin)

	start := time.Now()
	cmd := exec.CommandContext(ctx, filepath.Join(d.bin, "terraform"), "apply", //nolint:gosec // ./bin/terraform, fixed arguments
		"-auto-approve", "-input=false", "-no-color", "-compact-warnings")
	cmd.Dir, cmd.Env = d.tfDir, append(os.Environ(), d.tfEnv...)
	// On Ctrl-C or the demo's timeout, Terraform gets one interrupt and time to stop cleanly.
	interruptOnce(cmd)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	logf, err := os.Create(filepath.Join(d.dir, "terraform-apply.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	if err := cmd.Start(); err != nil {
		return err
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	// Terraform's own output, and every few seconds the initial load's progress as the agent reports it.
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	var lastProgress string
	inPlan := false
	for lines != nil {
		select {
		case line, ok := <-lines:
			if !ok {
				lines = nil
				continue
			}
			fmt.Fprintln(logf, line)
			// The full plan is in the log file; the console gets the rest.
			switch {
			case strings.HasPrefix(line, "Terraform will perform the following actions"):
				inPlan = true
			case strings.HasPrefix(line, "Plan:"):
				inPlan = false
			}
			if !inPlan && strings.TrimSpace(line) != "" {
				fmt.Println("    terraform | " + line)
			}
		case <-tick.C:
			if p := d.progress(ctx); p != "" && p != lastProgress {
				lastProgress = p
				fmt.Println("    progress  | " + p)
			}
		}
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("terraform apply: %w (see %s)", err, logf.Name())
	}
	d.loadTime = time.Since(start)
	if p := d.progress(ctx); p != "" && p != lastProgress {
		fmt.Println("    progress  | " + p)
	}
	return nil
}

// progress is a one-line view of the connector's state and per-table load progress.
func (d *demo) progress(ctx context.Context) string {
	c, err := d.cp.FindConnector(ctx, connectorName)
	if err != nil {
		return ""
	}
	st, err := d.cp.Status(ctx, c.ID)
	if err != nil {
		return ""
	}
	parts := []string{st.State}
	tables := st.Tables
	sort.Slice(tables, func(i, j int) bool { return tables[i].Table < tables[j].Table })
	var done int64
	for _, t := range tables {
		pct := 100.0
		if t.LoadTotal > 0 {
			pct = 100 * float64(t.LoadDone) / float64(t.LoadTotal)
		}
		parts = append(parts, fmt.Sprintf("%s %d/%d (%.0f%%, %s)", t.Table, t.LoadDone, t.LoadTotal, pct, t.Phase))
		done += t.LoadDone
	}
	d.loadedRecords = done
	return strings.Join(parts, " · ")
}

func (d *demo) planAgain(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, filepath.Join(d.bin, "terraform"), "plan", //nolint:gosec // ./bin/terraform, fixed arguments
		"-detailed-exitcode", "-input=false", "-no-color")
	cmd.Dir, cmd.Env = d.tfDir, append(os.Environ(), d.tfEnv...)
	interruptOnce(cmd)
	out, err := cmd.CombinedOutput()
	_ = os.WriteFile(filepath.Join(d.dir, "terraform-plan.log"), out, 0o600)
	var exit *exec.ExitError
	switch {
	case err == nil:
		d.planEmpty = true
		fmt.Println("    No changes: terraform plan -detailed-exitcode exited 0.")
		return nil
	case errors.As(err, &exit) && exit.ExitCode() == 2:
		fmt.Printf("    The plan is not empty (exit 2); see %s\n", filepath.Join(d.dir, "terraform-plan.log"))
		return nil
	default:
		return fmt.Errorf("terraform plan: %w\n%s", err, out)
	}
}

func (d *demo) showStatus(ctx context.Context) error {
	out, err := d.crmsync(ctx, "status", connectorName)
	if err != nil {
		return err
	}
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		fmt.Println("    " + line)
	}
	return nil
}

func (d *demo) crmsync(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(d.bin, "crmsync"), args...) //nolint:gosec // ./bin/crmsync with the demo's arguments
	interruptOnce(cmd)
	cmd.Env = append(os.Environ(), "CRMSYNC_ENDPOINT="+d.endpoint, "CRMSYNC_TOKEN="+d.token)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("crmsync %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// changeSalesforce changes records through the sandbox's admin API (as people would in Salesforce) and waits
// until Dataverse shows every change.
func (d *demo) changeSalesforce(ctx context.Context) error {
	var ids []string
	if err := d.adminNDJSON(ctx, "/salesforce/export?object=Contact", func(rec map[string]any) {
		if del, _ := rec["IsDeleted"].(bool); !del {
			ids = append(ids, fmt.Sprint(rec["Id"]))
		}
	}); err != nil {
		return err
	}
	if len(ids) < 2 {
		return fmt.Errorf("the sandbox has %d contacts; the demo needs 2", len(ids))
	}
	updated, deleted := ids[0], ids[1]
	const title, phone = "Chief Demo Officer", "+1 555 0100"
	before, _ := d.dataverseRow(ctx, updated)
	start := time.Now()
	// The named update and delete come last: change events apply in commit order, so once the Contact
	// table's position passes their replay IDs, every change before them is in Dataverse too.
	if err := d.adminPost(ctx, "/salesforce/mutate", map[string]any{"object": "Contact", "count": 25, "omit_ids": true}, nil); err != nil {
		return err
	}
	var gen struct {
		IDs [][]string `json:"ids"`
	}
	if err := d.adminPost(ctx, "/salesforce/generate", map[string]any{"object": "Contact", "count": 5}, &gen); err != nil {
		return err
	}
	var tx struct {
		IDs       [][]string `json:"ids"`
		ReplayIDs []uint64   `json:"replay_ids"`
	}
	if err := d.adminPost(ctx, "/salesforce/transaction", map[string]any{"operations": []map[string]any{
		{"op": "update", "object": "Contact", "id": updated, "fields": map[string]any{"Title": title, "Phone": phone}},
		{"op": "delete", "object": "Contact", "id": deleted},
	}}, &tx); err != nil {
		return err
	}
	var last uint64
	for _, r := range tx.ReplayIDs {
		last = max(last, r)
	}
	var created []string
	for _, g := range gen.IDs {
		created = append(created, g...)
	}
	d.changes = []string{fmt.Sprintf("updated %s (Title, Phone)", updated), fmt.Sprintf("deleted %s", deleted),
		fmt.Sprintf("created %d contacts", len(created)), "changed 25 random contacts"}
	d.changeKinds = []string{"1 update", "1 delete", fmt.Sprintf("%d creates", len(created)), "25 random updates"}
	d.changesMade = d.changeCount(len(created))
	for _, c := range d.changes {
		fmt.Println("    salesforce | " + c)
	}

	err := waitUntil(ctx, nil, 2*time.Minute, "all the changes to reach Dataverse", func() bool {
		// Every change written: the Contact table's reported position is past the last one's replay ID.
		if !d.contactPositionPast(ctx, last) {
			return false
		}
		row, ok := d.dataverseRow(ctx, updated)
		if !ok || row["jobtitle"] != title || row["telephone1"] != phone {
			return false
		}
		if _, ok := d.dataverseRow(ctx, deleted); ok {
			return false
		}
		for _, id := range created {
			if _, ok := d.dataverseRow(ctx, id); !ok {
				return false
			}
		}
		return true
	})
	if err != nil {
		return err
	}
	d.changeLatency = time.Since(start)
	after, _ := d.dataverseRow(ctx, updated)
	guid := sfid.MustGUID(updated)
	fmt.Printf("    dataverse  | contact %s (Salesforce %s):\n", guid, updated)
	fmt.Printf("    dataverse  |   jobtitle   %q -> %q\n", before["jobtitle"], after["jobtitle"])
	fmt.Printf("    dataverse  |   telephone1 %q -> %q\n", before["telephone1"], after["telephone1"])
	fmt.Printf("    dataverse  | contact of %s deleted; %d new contacts present\n", deleted, len(created))
	fmt.Printf("    all %d changes are in Dataverse %.1fs after they were made in Salesforce\n", d.changeCount(len(created)), d.changeLatency.Seconds())
	return nil
}

// changeCount is how many record changes changeSalesforce made: 25 random updates, the creates, one update
// and one delete.
func (d *demo) changeCount(created int) int { return 25 + created + 2 }

// contactPositionPast says whether the Contact table's status reports a replay position at or past id.
func (d *demo) contactPositionPast(ctx context.Context, id uint64) bool {
	c, err := d.cp.FindConnector(ctx, connectorName)
	if err != nil {
		return false
	}
	st, err := d.cp.Status(ctx, c.ID)
	if err != nil {
		return false
	}
	for _, t := range st.Tables {
		if t.Table == "Contact" {
			return t.Position >= id
		}
	}
	return false
}

func (d *demo) summary(ctx context.Context) error {
	var sf struct {
		Records map[string]struct {
			Live int64 `json:"live"`
		} `json:"records"`
	}
	if err := d.adminGet(ctx, "/salesforce/", &sf); err != nil {
		return err
	}
	count := func(table string) (int64, error) {
		var c struct {
			Count int64 `json:"count"`
		}
		return c.Count, d.adminGet(ctx, "/dataverse/tables/"+table+"/count", &c)
	}
	dvContacts, err := count("contact")
	if err != nil {
		return err
	}
	dvAccounts, err := count("account")
	if err != nil {
		return err
	}
	c, err := d.cp.FindConnector(ctx, connectorName)
	if err != nil {
		return err
	}
	st, err := d.cp.Status(ctx, c.ID)
	if err != nil {
		return err
	}
	match := func(a, b int64) string {
		if a == b {
			return "equal"
		}
		return "DIFFERENT"
	}
	plan := "no changes (exit 0)"
	if !d.planEmpty {
		plan = "CHANGES"
	}
	rows := [][2]string{
		{"Contact → contact", fmt.Sprintf("%d in Salesforce, %d in Dataverse (%s)", sf.Records["Contact"].Live, dvContacts, match(sf.Records["Contact"].Live, dvContacts))},
		{"Account → account", fmt.Sprintf("%d in Salesforce, %d in Dataverse (%s)", sf.Records["Account"].Live, dvAccounts, match(sf.Records["Account"].Live, dvAccounts))},
		{"terraform apply", fmt.Sprintf("%.1fs, including the initial load of %d records", d.loadTime.Seconds(), d.loadedRecords)},
		{"plan after apply", plan},
		{"changes in Salesforce", fmt.Sprintf("%s: all %d in Dataverse after %.1fs", strings.Join(d.changeKinds, ", "), d.changesMade, d.changeLatency.Seconds())},
		{"connector", fmt.Sprintf("%s, revision %d of %d deployed, lag %.1fs, %d dead letters", st.State, st.DeployedRevision, st.LatestRevision, st.LagSeconds, st.DeadLetters)},
		{"API usage", fmt.Sprintf("%d Salesforce calls, %d Dataverse requests (%d throttled)", st.SalesforceCalls, st.DataverseCalls, st.Throttled)},
		{"demo", fmt.Sprintf("%.0fs in all", time.Since(d.started).Seconds())},
	}
	for _, r := range rows {
		fmt.Printf("    %-22s %s\n", r[0], r[1])
	}
	if match(sf.Records["Contact"].Live, dvContacts) != "equal" || match(sf.Records["Account"].Live, dvAccounts) != "equal" || !d.planEmpty ||
		st.State != api.StateStreaming {
		return errors.New("the end state is not what it should be (see above)")
	}
	return nil
}

// dataverseRow reads a contact row by its Salesforce Id (the row's key is the Id's deterministic GUID).
func (d *demo) dataverseRow(ctx context.Context, salesforceID string) (map[string]any, bool) {
	var row map[string]any
	if err := d.adminGet(ctx, "/dataverse/tables/contact/rows/"+sfid.MustGUID(salesforceID).String(), &row); err != nil {
		return nil, false
	}
	return row, true
}

func (d *demo) adminGet(ctx context.Context, path string, out any) error {
	return d.adminDo(ctx, http.MethodGet, path, nil, out)
}

func (d *demo) adminPost(ctx context.Context, path string, in, out any) error {
	return d.adminDo(ctx, http.MethodPost, path, in, out)
}

func (d *demo) adminDo(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(d.sandbox.AdminURL, "/")+path, body)
	if err != nil {
		return err
	}
	resp, err := d.admin.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		return fmt.Errorf("sandbox admin %s %s: HTTP %d: %s", method, path, resp.StatusCode, bytes.TrimSpace(b))
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}

func (d *demo) adminNDJSON(ctx context.Context, path string, each func(map[string]any)) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(d.sandbox.AdminURL, "/")+path, nil)
	if err != nil {
		return err
	}
	resp, err := d.admin.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("sandbox admin GET %s: HTTP %d", path, resp.StatusCode)
	}
	dec := json.NewDecoder(resp.Body)
	for dec.More() {
		var rec map[string]any
		if err := dec.Decode(&rec); err != nil {
			return err
		}
		each(rec)
	}
	return nil
}

// waitUntil polls cond every 250 ms until it holds, the process p exits, ctx ends or timeout passes.
func waitUntil(ctx context.Context, p *proc, timeout time.Duration, what string, cond func() bool) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var exited <-chan struct{}
	if p != nil {
		exited = p.done
	}
	for !cond() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-deadline.C:
			return fmt.Errorf("timed out after %s waiting for %s", timeout, what)
		case <-exited:
			return fmt.Errorf("%s exited while waiting for %s (see %s.log)", p.name, what, p.name)
		case <-tick.C:
		}
	}
	return nil
}
