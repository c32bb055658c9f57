// A Go program for the checkpoint refusal test (test/runtime/unstoppable.test.ts): prints a
// tick every 100 ms. Built static (CGO_ENABLED=0, main.go alone) and dynamic (with cgo.go).
package main

import (
	"fmt"
	"time"
)

func main() {
	for i := 0; ; i++ {
		fmt.Printf("go tick=%d\n", i)
		time.Sleep(100 * time.Millisecond)
	}
}
