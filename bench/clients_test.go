package main

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestMain lets the test binary stand in for the bench command as the trivial clients' process.
func TestMain(m *testing.M) {
	if ok, err := clientsMain(os.Args[1:], os.Stdin, os.Stdout); ok {
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestClientsOutOfProcess runs each ceiling scenario's trivial clients in a process of their own against a
// small sandbox: every row of the load is moved (a failed write or read fails the scenario), and both
// processes' figures come back.
func TestClientsOutOfProcess(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"intake", "output", "relay"} {
		t.Run(mode, func(t *testing.T) {
			res, err := scenarioClients(options{}, 1000, mode, self)
			if err != nil {
				t.Fatal(err)
			}
			f := res.Figures
			if f["records"] != 1200 {
				t.Errorf("records = %v, want 1,000 contacts + 200 accounts", f["records"])
			}
			for _, k := range []string{"records_per_second", "clients_cpu_ms_per_1000", "sandbox_cpu_ms_per_1000", "cpu_ms_per_1000"} {
				if _, ok := f[k]; !ok {
					t.Errorf("figure %s missing: %v", k, f)
				}
			}
			if f["records_per_second"] <= 0 || f["cpu_ms_per_1000"] != f["clients_cpu_ms_per_1000"]+f["sandbox_cpu_ms_per_1000"] {
				t.Errorf("figures %v", f)
			}
		})
	}
}

// TestClientsUnknownMode: the clients' process names a mode it does not know instead of measuring nothing.
func TestClientsUnknownMode(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	_, err = scenarioClients(options{}, 1000, "sideways", self)
	if err == nil || !strings.Contains(err.Error(), "did not get ready") {
		t.Fatalf("err = %v, want the clients' process to fail before getting ready", err)
	}
}
