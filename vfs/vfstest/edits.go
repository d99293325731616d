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

// Edit is a change programs make to an existing object of Size bytes,
// or, with Size 0, to a file they create.
type Edit struct {
	Name  string
	Size  int64
	Apply func(f File) error
	// Model makes the same change to the object's bytes.
	Model func(b []byte) []byte
	// MaxSent and MaxFetched bound the body bytes the save may send to
	// S3 and fetch from it.
	MaxSent, MaxFetched int64
	// Ops, when set, are how many of these requests the edit and its
	// save must send, exactly.
	Ops map[string]int
	// Theirs, when set, is stored as the object by another program after
	// Apply and before the save: the save must then fail, and the
	// object stay theirs.
	Theirs []byte
}

// newFile is the content of the new file of the streaming case: three
// parts and a little.
func newFile() []byte {
	b := make([]byte, 3*PartSize+100)
	detdata.New(7, int64(len(b))).ReadAt(b, 0)
	return b
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
			// A file written front to back from empty is sent part by
			// part while it is written: no PUT of the whole at the end.
			Name: "write a new file front to back", Size: 0,
			Apply: func(f File) error {
				data := newFile()
				for off := 0; off < len(data); off += 1 << 20 {
					if err := f.WriteAt(data[off:min(off+1<<20, len(data))], int64(off)); err != nil {
						return err
					}
				}
				return nil
			},
			Model:   func([]byte) []byte { return newFile() },
			MaxSent: 3*PartSize + 100 + Slack, MaxFetched: Slack,
			Ops: map[string]int{"UploadPart": 4, "PutObject": 0, "CompleteMultipartUpload": 1},
		},
		{
			// Another program replaced the object while this mount held
			// a partly fetched copy: the bytes it did not fetch are
			// gone, so the save fails, and the other version stays.
			Name: "another program replaces it meanwhile", Size: size,
			Apply:   func(f File) error { return f.Append(line) },
			Theirs:  []byte("another program's version"),
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
