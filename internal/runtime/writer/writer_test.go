package writer_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/crmsync/terraform-provider-crmsync/internal/mapping/sfid"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/sink/dataverse"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/writer"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox"
)

type env struct {
	sb   *sandbox.Sandbox
	dv   *dataverse.Client
	team string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	sb, err := sandbox.Start(t.Context(), sandbox.Options{Dir: filepath.Join(t.TempDir(), "sandbox")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close() })
	i := sb.Info.Dataverse
	dv, err := dataverse.New(dataverse.Config{EnvironmentURL: i.EnvironmentURL, AuthorityURL: i.AuthorityURL, TenantID: i.TenantID,
		ClientID: i.ClientID, ClientSecret: i.ClientSecret, CAFile: i.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	return &env{sb: sb, dv: dv, team: i.TeamID}
}

func key(n int) string {
	id, err := sfid.To18(fmt.Sprintf("003%012d", n))
	if err != nil {
		panic(err)
	}
	g, err := sfid.GUID(id)
	if err != nil {
		panic(err)
	}
	return g.String()
}

// refusals collects what a target's OnRefused hears (chunks settle concurrently).
type refusals struct {
	mu   sync.Mutex
	keys []string
}

func (r *refusals) target() writer.Target {
	return writer.Target{Table: "contact", EntitySet: "contacts", PrimaryID: "contactid",
		OnRefused: func(_ context.Context, rf writer.Refusal) error {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.keys = append(r.keys, rf.Op.Key)
			return nil
		}}
}

// TestARefusedRowIsSettledAloneAndTheOthersAreWritten: a bulk message fails as a whole, so the writer must
// find the refused rows (bisecting) and write every other row of the same Write.
func TestARefusedRowIsSettledAloneAndTheOthersAreWritten(t *testing.T) {
	e := newEnv(t)
	w := writer.New(writer.Config{Client: e.dv, BatchSize: 8, Concurrency: 2})
	owner := `,"ownerid@odata.bind":"/teams(` + e.team + `)"`
	var ops []writer.Op
	for i := 1; i <= 20; i++ {
		body := fmt.Sprintf(`"lastname":"Row %d"`, i) + owner
		if i == 7 || i == 15 {
			// A lookup to an account that does not exist: Dataverse refuses this row alone.
			body += `,"parentcustomerid_account@odata.bind":"/accounts(` + key(900+i) + `)"`
		}
		ops = append(ops, writer.Op{Kind: writer.Upsert, RecordID: fmt.Sprint(i), Key: key(i), Body: []byte(body), Changes: 2})
	}
	var r refusals
	out, err := w.Write(t.Context(), r.target(), ops)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(r.keys)
	want := []string{key(7), key(15)}
	slices.Sort(want)
	if out.Written != 36 || out.Refused != 4 || !slices.Equal(r.keys, want) || len(out.RefusedIDs) != 2 {
		t.Fatalf("outcome %+v, refused keys %v (want written 36 changes, refused 4, keys %v)", out, r.keys, want)
	}
	if e.dv.Stats.Get("bulk_rows") == 0 {
		t.Error("no bulk message was sent: the bisection was not exercised")
	}
	for i := 1; i <= 20; i++ {
		_, err := e.sb.Dataverse.Row("contact", key(i))
		if (i == 7 || i == 15) != (err != nil) {
			t.Errorf("row %d: %v", i, err)
		}
	}

	// An update of a row that does not exist is reported missing (the caller writes the whole record); a
	// delete of a row already gone is done.
	out, err = w.Write(t.Context(), r.target(), []writer.Op{
		{Kind: writer.Update, RecordID: "u", Key: key(500), Body: []byte(`"lastname":"Nobody"`), Changes: 3},
		{Kind: writer.Delete, RecordID: "d", Key: key(501), Changes: 1},
		{Kind: writer.Delete, RecordID: "1", Key: key(1), Changes: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(out.Missing, []string{"u"}) || out.Skipped != 2 || out.Written != 2 || out.Refused != 0 {
		t.Fatalf("outcome %+v", out)
	}
	if _, err := e.sb.Dataverse.Row("contact", key(1)); err == nil {
		t.Error("row 1 was not deleted")
	}
}

// TestAFailureToRecordARefusalFailsTheWholeWrite: a refused row that cannot be recorded must not count as
// settled, so the caller writes everything again.
func TestAFailureToRecordARefusalFailsTheWholeWrite(t *testing.T) {
	e := newEnv(t)
	w := writer.New(writer.Config{Client: e.dv, BatchSize: 10, Concurrency: 1})
	tg := writer.Target{Table: "contact", EntitySet: "contacts", PrimaryID: "contactid",
		OnRefused: func(context.Context, writer.Refusal) error { return errors.New("dead-letter store down") }}
	_, err := w.Write(t.Context(), tg, []writer.Op{
		{Kind: writer.Upsert, RecordID: "1", Key: key(1), Body: []byte(`"lastname":"A","ownerid@odata.bind":"/teams(` + e.team + `)"`), Changes: 1},
		{Kind: writer.Upsert, RecordID: "2", Key: key(2), Body: []byte(`"lastname":"B","parentcustomerid_account@odata.bind":"/accounts(` + key(999) + `)"`), Changes: 1},
	})
	var te *writer.TableError
	if !errors.As(err, &te) {
		t.Fatalf("want a *writer.TableError, got %v", err)
	}
}

// TestTableLevelErrors: what concerns the whole table is retried by the caller, a row's own error is not.
func TestTableLevelErrors(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&dataverse.APIError{Status: 403}, true},
		{&dataverse.APIError{Status: 401}, true},
		{&dataverse.APIError{Status: 429}, true},
		{&dataverse.APIError{Status: 503}, true},
		{errors.New("connection reset"), true},
		{&dataverse.APIError{Status: 404}, false},
		{&dataverse.APIError{Status: 400}, false},
		{&dataverse.APIError{Status: 412}, false},
	} {
		if got := writer.TableLevel(c.err); got != c.want {
			t.Errorf("TableLevel(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
