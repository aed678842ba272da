package tuning

import (
	"runtime/debug"
	"testing"
)

func TestApplySetsGCPercentWhenGOGCIsUnset(t *testing.T) {
	t.Setenv("GOGC", "")
	before := debug.SetGCPercent(100)
	defer debug.SetGCPercent(before)
	if got := Apply(); got != GCPercent {
		t.Fatalf("Apply() = %d, want %d", got, GCPercent)
	}
	if inForce := debug.SetGCPercent(100); inForce != GCPercent {
		t.Fatalf("GC percent in force %d, want %d", inForce, GCPercent)
	}
}

func TestApplyKeepsGOGC(t *testing.T) {
	t.Setenv("GOGC", "150") // read by the runtime at start, so here only "set"
	before := debug.SetGCPercent(150)
	defer debug.SetGCPercent(before)
	if got := Apply(); got != 150 {
		t.Fatalf("Apply() = %d with GOGC set, want the value in force 150", got)
	}
	if inForce := debug.SetGCPercent(100); inForce != 150 {
		t.Fatalf("GC percent in force %d, want 150 kept", inForce)
	}
}
