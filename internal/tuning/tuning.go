// Package tuning holds the Go runtime settings fenqid runs with, so that
// the benchmarks measure under the same ones.
package tuning

import (
	"os"
	"runtime/debug"
)

// GCPercent is the garbage collector's target fenqid sets when GOGC is
// not in the environment. Reading a user allocates ~13 KB (go-redis
// replies and the parsed state) that is garbage a batch later, over a live
// heap of only tens of MB, so at Go's default of 100 the collector runs
// hundreds of times a second and takes a large share of the two cores. At
// 400 a recompute of 1,000,000 users ran ~25% faster (31.2 → 23.1 s; the
// read alone 24.7 → 18.5 s) for a peak heap of ~340 MB instead of ~130 MB
// (BenchmarkRecompute1M).
const GCPercent = 400

// Apply sets GCPercent unless GOGC is set, and reports the value in force
// (GOGC=off reports -1).
func Apply() int {
	if os.Getenv("GOGC") != "" {
		v := debug.SetGCPercent(100) // read the value in force...
		debug.SetGCPercent(v)        // ...and put it back
		return v
	}
	debug.SetGCPercent(GCPercent)
	return GCPercent
}
