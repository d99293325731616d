package vfs

import "sync"

// Buffer size classes: powers of two from 128 KiB (a random read's block)
// to 8 MiB (the largest read-ahead chunk).
const (
	minClassShift = 17
	numClasses    = 7
)

// bufPool recycles read buffers by size class. Streaming through fresh
// buffers cost the FUSE process a fifth of its CPU: Go zeroes every new
// buffer, and the kernel faults in and zeroes its pages again when a
// socket read first touches them. Recycled buffers hold old data, so
// readers only ever see the prefix a fetch filled.
type bufPool struct {
	classes [numClasses]sync.Pool
}

// class returns the smallest class holding n bytes, or -1 if none does.
func class(n int) int {
	for c := range numClasses {
		if n <= 1<<(minClassShift+c) {
			return c
		}
	}
	return -1
}

// bufCharge is what a buffer for n bytes takes from the budget: its
// class's size, which a chunk that is not a power of two (a window still
// growing, a file's last chunk) rounds up to.
func bufCharge(n int64) int64 {
	if c := class(int(n)); c >= 0 {
		return 1 << (minClassShift + c)
	}
	return n
}

// get returns a buffer of length n.
func (p *bufPool) get(n int) *[]byte {
	c := class(n)
	if c < 0 {
		b := make([]byte, n)
		return &b
	}
	if b, ok := p.classes[c].Get().(*[]byte); ok {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, 1<<(minClassShift+c))
	return &b
}

// put hands b back for reuse; its holder must not touch it again.
func (p *bufPool) put(b *[]byte) {
	c := class(cap(*b))
	if c < 0 || cap(*b) != 1<<(minClassShift+c) {
		return // not one of ours: let the collector have it
	}
	p.classes[c].Put(b)
}
