// Package par runs the independent iterations of a loop on the machine's
// cores: the CPU-bound steps of a batch (decoding records, computing each
// user's events, building the records to publish) that would otherwise
// hold one core while the others wait.
package par

import (
	"fmt"
	"runtime"
	"sync"
)

// MinChunk is the fewest iterations worth a goroutine of their own: a
// shorter loop runs in the caller's goroutine.
const MinChunk = 32

// For calls fn(i) for every i in [0, n), in contiguous chunks on up to
// GOMAXPROCS goroutines, and returns when every call has returned. fn must
// be safe to call concurrently for distinct i; each i is called once. A
// panic in fn is raised again in the caller, after the other chunks end.
func For(n int, fn func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n/MinChunk)
	if workers <= 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	var wg sync.WaitGroup
	var once sync.Once
	var panicked any
	chunk := (n + workers - 1) / workers
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Go(func() {
			defer func() {
				if r := recover(); r != nil {
					once.Do(func() { panicked = r })
				}
			}()
			for i := lo; i < hi; i++ {
				fn(i)
			}
		})
	}
	wg.Wait()
	if panicked != nil {
		panic(fmt.Sprintf("par: %v", panicked))
	}
}
