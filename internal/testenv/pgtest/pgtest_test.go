package pgtest_test

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/crmsync/terraform-provider-crmsync/internal/testenv/pgtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Shutdown()
	os.Exit(code)
}

func query(t *testing.T, url, q string, out ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, q).Scan(out...); err != nil {
		t.Fatal(err)
	}
}

func exec(t *testing.T, url, q string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, q); err != nil {
		t.Fatal(err)
	}
}

// A private cluster runs unprivileged, survives a stop and a crash with its data, and is gone after cleanup.
func TestClusterRestartsWithItsDataAndIsRemoved(t *testing.T) {
	var dir string
	t.Run("cluster", func(t *testing.T) {
		c := pgtest.New(t)
		dir = c.Dir
		url, err := c.CreateDatabase(t.Context(), "kept")
		if err != nil {
			t.Fatal(err)
		}
		var user string
		exec(t, url, "CREATE TABLE x AS SELECT 42 AS v")
		query(t, url, "SELECT current_user", &user)
		if user != pgtest.Superuser {
			t.Errorf("connected as %q", user)
		}
		fi, err := os.Stat(c.Dir + "/data")
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); os.Geteuid() == 0 && st.Uid == 0 {
			t.Error("the data directory is root's: the server runs as root")
		}
		if err := c.Stop(); err != nil {
			t.Fatal(err)
		}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		if err := c.Kill(); err != nil {
			t.Fatal(err)
		}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		var v int
		query(t, url, "SELECT v FROM x", &v)
		if v != 42 {
			t.Errorf("v = %d after restarts", v)
		}
	})
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the cluster's directory %s is still there: %v", dir, err)
	}
}

// Databases of the shared cluster are separate.
func TestDatabasesAreSeparate(t *testing.T) {
	a, b := pgtest.Database(t), pgtest.Database(t)
	if a == b {
		t.Fatalf("the same database twice: %s", a)
	}
	exec(t, a, "CREATE TABLE only_in_a AS SELECT 1 AS v")
	var n int
	query(t, b, "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'", &n)
	if n != 0 {
		t.Error("a table of one database is seen in the other")
	}
}
