// Package vfstest holds behaviour cases of the filesystem core that run
// both on the core itself, without FUSE (package vfs's tests), and
// through a real mount (package fs's tests), so that the two cannot drift
// apart: what a kind of change to a file must send to S3 and fetch from
// it, and what the object must hold after.
package vfstest

import (
	"io"
	"maps"
	"sync"
	"time"

	"mount-ws/bucket"
	"mount-ws/internal/detdata"
)

// PartSize is the part size the cases assume (S3's smallest): run them
// with uploads in parts of this size.
const PartSize = 5 << 20

// Slack is what the byte bounds allow beyond the data itself: the
// answers' XML, and fetches rounded out to the read-ahead's 128 KiB
// blocks.
const Slack = 256 << 10

// File is what an edit does to a file open for reading and writing.
type File interface {
	WriteAt(p []byte, off int64) error
	Append(p []byte) error
	Truncate(size int64) error
}

// Edit is a change programs make to an existing object of Size bytes.
type Edit struct {
	Name  string
	Size  int64
	Apply func(f File) error
	// Model makes the same change to the object's bytes.
	Model func(b []byte) []byte
	// MaxSent and MaxFetched bound the body bytes the save may send to
	// S3 and fetch from it.
	MaxSent, MaxFetched int64
}

// Content returns the bytes of the object an edit starts from.
func (e Edit) Content() []byte {
	b := make([]byte, e.Size)
	if _, err := detdata.New(uint64(e.Size), e.Size).ReadAt(b, 0); err != nil && err != io.EOF {
		panic(err) // detdata serves any range of its size
	}
	return b
}

// Edits are the changes whose saves must send only what changed: a
// file of three parts edited in the ways programs do. A partial update
// sends what changed (widened to S3's smallest part), copies the rest on
// the server, and fetches only what it needs.
func Edits() []Edit {
	const size = 13 << 20
	line := []byte("epoch 7, loss 0.31\n")
	return []Edit{
		{
			Name: "append a line", Size: size,
			Apply:   func(f File) error { return f.Append(line) },
			Model:   func(b []byte) []byte { return append(b, line...) },
			MaxSent: Slack, MaxFetched: Slack,
		},
		{
			Name: "one byte in the middle", Size: size,
			Apply:   func(f File) error { return f.WriteAt([]byte{'X'}, 7<<20) },
			Model:   func(b []byte) []byte { b[7<<20] = 'X'; return b },
			MaxSent: PartSize + Slack, MaxFetched: PartSize + Slack,
		},
		{
			Name: "truncate to two parts and append", Size: size,
			Apply: func(f File) error {
				if err := f.Truncate(11 << 20); err != nil {
					return err
				}
				return f.Append([]byte("tail"))
			},
			Model:   func(b []byte) []byte { return append(b[:11<<20], "tail"...) },
			MaxSent: Slack, MaxFetched: Slack,
		},
		{
			Name: "extend with a hole", Size: size,
			Apply:   func(f File) error { return f.Truncate(size + 3) },
			Model:   func(b []byte) []byte { return append(b, 0, 0, 0) },
			MaxSent: Slack, MaxFetched: Slack,
		},
		{
			// What is left fits one PUT: it must be fetched first.
			Name: "truncate below one part", Size: size,
			Apply:   func(f File) error { return f.Truncate(1 << 20) },
			Model:   func(b []byte) []byte { return b[:1<<20] },
			MaxSent: 1<<20 + Slack, MaxFetched: 1<<20 + Slack,
		},
	}
}

// Traffic is a bucket.Observer that counts the requests that succeeded,
// by operation, and the body bytes sent and received.
type Traffic struct {
	mu             sync.Mutex
	ops            map[string]int
	sent, received int64
}

// Request implements bucket.Observer.
func (r *Traffic) Request(op, outcome string, _ time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if outcome == bucket.OutcomeOK {
		if r.ops == nil {
			r.ops = map[string]int{}
		}
		r.ops[op]++
	}
}

// Transferred implements bucket.Observer.
func (r *Traffic) Transferred(sent, received int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent += sent
	r.received += received
}

// Reset forgets what was counted so far.
func (r *Traffic) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops, r.sent, r.received = nil, 0, 0
}

// Snapshot returns what was counted since the last Reset.
func (r *Traffic) Snapshot() (ops map[string]int, sent, received int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.ops), r.sent, r.received
}
