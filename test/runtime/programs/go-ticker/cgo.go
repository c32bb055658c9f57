package main

// With cgo the program is linked dynamically (libc, and so libvos.so, are loaded into it).

// int vos_cgo_marker(void) { return 1; }
import "C"

var _ = C.vos_cgo_marker
