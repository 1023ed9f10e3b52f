package harness

import (
	"os"
	"testing"
	"time"
)

// TestCPUTimeGrowsWithWork spins until this process's CPU time, as CPUTime reads it, has grown by 50 ms;
// it fails if that does not happen within 10 s of spinning.
func TestCPUTimeGrowsWithWork(t *testing.T) {
	before, err := CPUTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	x := 0
	deadline := time.Now().Add(10 * time.Second)
	for {
		for i := range 100000 {
			x ^= i * i
		}
		now, err := CPUTime(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if d := now - before; d >= 50*time.Millisecond {
			if d > time.Hour {
				t.Fatalf("implausible CPU time growth %v", d)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CPU time grew by only %v in 10 s of spinning (x=%d)", now-before, x)
		}
	}
	if _, err := CPUTime(-1); err == nil {
		t.Error("CPUTime of a missing process must fail")
	}
}
