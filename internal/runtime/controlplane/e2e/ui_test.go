package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/faults"
	sfemu "github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce"
)

// browser finds Chromium. Without one the status page tests skip, saying how to run them, except in CI
// (CI is set), where .ci/run installs Debian's chromium and they must run.
func browser(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no Chromium on this CI machine: .ci/run installs Debian's chromium (apt-get install chromium); the status page tests must run in CI")
	}
	t.Skip("no Chromium found (chromium, chromium-browser, google-chrome): install it (apt-get install chromium) to run the status page tests")
	return ""
}

// newBrowser starts a headless Chromium with an empty profile and returns a tab's context. Its HOME and XDG
// directories are the test's: Chromium writes crash reports and dconf files there, never in the user's home.
func newBrowser(t *testing.T, exe string) context.Context {
	t.Helper()
	home := t.TempDir()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.Env("HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"), "XDG_CACHE_HOME="+filepath.Join(home, ".cache"),
			"XDG_RUNTIME_DIR="+filepath.Join(home, "run")),
		chromedp.Flag("disable-crash-reporter", true), chromedp.Flag("disable-breakpad", true),
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.WindowSize(1280, 1000))
	actx, cancelAlloc := chromedp.NewExecAllocator(t.Context(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(cancel)
	return ctx
}

// do runs chromedp steps with a bound (the browser started with the context's first, unbounded, call).
func do(t *testing.T, ctx context.Context, within time.Duration, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	if err := chromedp.Do(c, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// get runs one chromedp action with a bound and returns its value.
func get[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(c, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// textOf returns the text of the element a CSS selector finds ("" when none), read in one script: the page
// redraws its tables, so a node found by one query may be gone by the next.
func textOf(t *testing.T, ctx context.Context, selector string) string {
	t.Helper()
	sel, err := json.Marshal(selector)
	if err != nil {
		t.Fatal(err)
	}
	return get(t, ctx, selector, chromedp.Evaluate[string](`(() => { const e = document.querySelector(`+string(sel)+`); return e ? e.textContent : ""; })()`))
}

// screenshot saves the page as PNG: into CRMSYNC_UI_SCREENSHOTS when set (the images in docs/ are made so),
// else into the test's directory, checked to be a PNG.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png := get(t, ctx, "screenshot "+name, chromedp.FullScreenshot(100))
	if len(png) < 8 || string(png[1:4]) != "PNG" {
		t.Fatalf("screenshot %s is not a PNG (%d bytes)", name, len(png))
	}
	dir := os.Getenv("CRMSYNC_UI_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil { //nolint:gosec // an image for the docs
		t.Fatal(err)
	}
}

// TestStatusPageInARealBrowser: Chromium signs in to /ui with the API token, lists the connector,
// opens its page and watches the initial load progress (with a rate and an ETA) and the throughput chart get
// points, then retries a dead letter from the page and sees the agent retry it.
func TestStatusPageInARealBrowser(t *testing.T) {
	exe := browser(t)
	e := newEnv(t, 12000, 300)
	// Slow Dataverse down so the load takes long enough to watch: 100 rows per write, one write at a time,
	// 60 ms each (about 8 s for the contacts).
	e.sb.Dataverse.Faults().Set(faults.Config{Latency: 60 * time.Millisecond, PathPrefix: "/api/data/"})
	spec := e.connectorSpec("e2e-ui", e.sb.Info.Dataverse.TeamID)
	spec.Tuning.BatchSize, spec.Tuning.WriteConcurrency = 100, 1
	conn, _ := e.createConnector(spec)
	if _, err := e.c.Activate(t.Context(), conn.ID, api.ActivationRequest{Active: true}); err != nil {
		t.Fatal(err)
	}

	ctx := newBrowser(t, exe)
	base := "http://" + e.addr
	// The first call starts the browser and must not be bounded (chromedp.Run).
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/ui")); err != nil {
		t.Fatal(err)
	}
	do(t, ctx, time.Minute, "the sign-in form", chromedp.WaitVisible(chromedp.ID("signin")))
	screenshot(t, ctx, "ui-signin.png")
	// A wrong token is refused on the page; the right one signs in.
	do(t, ctx, 30*time.Second, "a wrong token", chromedp.SendKeys(chromedp.ID("token"), "not-the-token"), chromedp.Click(chromedp.CSS(`#signin button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#signin-error:not(:empty)`)))
	if msg := get(t, ctx, "the sign-in error", chromedp.Text(chromedp.ID("signin-error"))); !strings.Contains(msg, "not the control plane's API token") {
		t.Errorf("a wrong token: %q", msg)
	}
	do(t, ctx, 30*time.Second, "signing in", chromedp.SendKeys(chromedp.ID("token"), token), chromedp.Click(chromedp.CSS(`#signin button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#connectors tr[data-connector="e2e-ui"]`)))
	if html := get(t, ctx, "the page", chromedp.OuterHTML(chromedp.CSS("html"))); strings.Contains(html, token) {
		t.Error("the page holds the API token after sign-in")
	}
	screenshot(t, ctx, "ui-connectors.png")

	// The connector's page: the load progresses, with a rate and the time left.
	do(t, ctx, 30*time.Second, "opening the connector", chromedp.Click(chromedp.CSS(`#connectors tr[data-connector="e2e-ui"] a`)),
		chromedp.WaitVisible(chromedp.CSS(`#tables .card[data-table="Contact"] progress`)))
	// The page redraws its tables every few seconds, replacing their nodes: a node found by one query may be
	// gone by the next (chromedp: "No node with given id found"), so the bar and its text are read in one
	// script, from the same drawing.
	type bar struct {
		Done, Total string
		Text        string
	}
	progress := func() (int64, int64, string) {
		b := get(t, ctx, "the progress", chromedp.Evaluate[bar](`(() => {
			const card = document.querySelector('#tables .card[data-table="Contact"]');
			const p = card && card.querySelector('progress'), txt = card && card.querySelector('.progress-text');
			return {Done: p ? p.dataset.done || "" : "", Total: p ? p.dataset.total || "" : "", Text: txt ? txt.textContent : ""};
		})()`))
		d, _ := strconv.ParseInt(b.Done, 10, 64)
		n, _ := strconv.ParseInt(b.Total, 10, 64)
		return d, n, b.Text
	}
	var seen []int64
	var withETA string
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		d, n, text := progress()
		if len(seen) == 0 || d != seen[len(seen)-1] {
			seen = append(seen, d)
			t.Logf("Contact: %s", text)
		}
		if strings.Contains(text, "rows/s") && strings.Contains(text, "left") && d > 0 && d < n {
			withETA = text
		}
		if n > 0 && d >= n {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if len(seen) < 3 {
		t.Errorf("the page showed the load at %d distinct points (%v); want it progressing", len(seen), seen)
	}
	if withETA == "" {
		t.Error("the page never showed the load's rate and time left")
	}
	e.settle(conn.ID, 3*time.Minute)
	e.sb.Dataverse.Faults().Reset()

	// The throughput chart has points.
	do(t, ctx, time.Minute, "the throughput chart's points",
		chromedp.Action[chromedp.Void](func(c context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			_, err := chromedp.Poll[bool](`Number(document.getElementById("chart-throughput").dataset.points) >= 3`, chromedp.WithPollingTimeout(time.Minute))(c, tg)
			return chromedp.Void{}, err
		}))
	points := get(t, ctx, "the chart", chromedp.AttributeValue(chromedp.ID("chart-throughput"), "data-points"))
	t.Logf("throughput chart: %s points", points.Value)

	// A record Dataverse refuses (LastName longer than lastname's 50 characters) is dead-lettered; the page
	// shows it, with its reason and payload, and retries it.
	bad := e.contactIDs()[0]
	if _, err := e.sb.Salesforce.Transact(sfemu.Transaction{Operations: []sfemu.Operation{{Op: "update", Object: "Contact", ID: bad,
		Fields: map[string]any{"LastName": strings.Repeat("Long", 18)}}}}); err != nil {
		t.Fatal(err)
	}
	row := fmt.Sprintf(`#dead-letters tr[data-record="%s"]`, bad)
	do(t, ctx, 2*time.Minute, "the dead letter on the page", chromedp.WaitVisible(chromedp.CSS(row)))
	reason := textOf(t, ctx, row+" .reason")
	t.Logf("dead letter reason: %s", reason)
	if !strings.Contains(strings.ToLower(reason), "lastname") {
		t.Errorf("the dead letter's reason does not name the column: %q", reason)
	}
	attempts := func() string {
		return strings.TrimSpace(textOf(t, ctx, row+" td.num"))
	}
	if a := attempts(); a != "1" {
		t.Fatalf("attempts before the retry: %q", a)
	}
	do(t, ctx, 10*time.Second, "opening the payload", chromedp.Click(chromedp.CSS(row+" summary")))
	screenshot(t, ctx, "ui-connector.png")
	do(t, ctx, 30*time.Second, "retrying from the page", chromedp.Click(chromedp.CSS(row+" button.retry")),
		chromedp.WaitVisible(chromedp.CSS(`#dl-message:not(:empty)`)))
	if msg := get(t, ctx, "the retry's message", chromedp.Text(chromedp.ID("dl-message"))); !strings.Contains(msg, "marked for retry") {
		t.Errorf("the retry's message: %q", msg)
	}
	// The agent takes it up: it re-reads the record and writes it, which Dataverse refuses again.
	retried := time.Now().Add(90 * time.Second)
	for attempts() != "2" {
		if time.Now().After(retried) {
			t.Fatalf("the agent did not retry the dead letter within 90 s of the click (attempts %s)", attempts())
		}
		time.Sleep(time.Second)
	}
	// Dark mode, by the toggle, for the docs.
	do(t, ctx, 10*time.Second, "dark mode", chromedp.Click(chromedp.ID("theme-toggle")), chromedp.WaitVisible(chromedp.CSS(`html[data-theme="dark"]`)))
	screenshot(t, ctx, "ui-connector-dark.png")
}
