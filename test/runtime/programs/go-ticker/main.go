// A Go program with goroutines and timers, for the stop from outside (test/runtime/outside-runtime.test.ts)
// and the refusals around it (unstoppable.test.ts): eight workers each on its own ticker, a
// time.AfterFunc that re-arms itself, a goroutine that keeps the garbage collector busy; every
// 100 ms the main loop prints its tick, a token drawn at start, and what the others counted.
// Built static (CGO_ENABLED=0, main.go alone) and dynamic (with cgo.go).
package main

import (
	"fmt"
	"math/rand"
	"runtime"
	"sync/atomic"
	"time"
)

func main() {
	token := fmt.Sprintf("%08x", rand.New(rand.NewSource(time.Now().UnixNano())).Uint32())
	var work, after int64
	for w := 0; w < 8; w++ {
		go func(w int) {
			t := time.NewTicker(time.Duration(5+w) * time.Millisecond)
			for range t.C {
				atomic.AddInt64(&work, 1)
			}
		}(w)
	}
	var rearm func()
	rearm = func() {
		atomic.AddInt64(&after, 1)
		time.AfterFunc(20*time.Millisecond, rearm)
	}
	time.AfterFunc(20*time.Millisecond, rearm)
	go func() {
		var keep [][]byte
		for {
			keep = append(keep, make([]byte, 4096))
			if len(keep) > 1000 {
				keep = keep[:0]
			}
			time.Sleep(time.Millisecond)
		}
	}()
	for i := 0; ; i++ {
		fmt.Printf("go tick=%d token=%s work=%d after=%d goroutines=%d\n", i, token, atomic.LoadInt64(&work),
			atomic.LoadInt64(&after), runtime.NumGoroutine())
		time.Sleep(100 * time.Millisecond)
	}
}
