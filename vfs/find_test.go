package vfs

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"mount-ws/bucket"
	"mount-ws/bucket/buckettest"
)

// TestFinderProbe: what a lookup finds of a name no listing knows, on the
// in-memory S3: a small file (its bytes kept for the read that follows),
// a directory from its marker, an implicit one, a directory hiding a file
// of its name (logged), one whose marker a page of longer names hides,
// and nothing.
func TestFinderProbe(t *testing.T) {
	b, _ := buckettest.NewFake(t)
	ctx := t.Context()
	put := func(key, body string, meta map[string]string) {
		t.Helper()
		if _, err := b.Put(ctx, key, bytes.NewReader([]byte(body)), int64(len(body)), bucket.Meta{User: meta}); err != nil {
			t.Fatal(err)
		}
	}
	put("d/small.txt", "ten bytes!", nil)
	put("d/sub/", "", map[string]string{MetaMode: "16832"}) // 040700
	put("d/sub/x", "x", nil)
	put("d/imp/x", "x", nil)
	put("d/both", "hidden", nil)
	put("d/both/y", "y", nil)
	for i := range ProbeKeys + 5 { // name.000 … sort before name/
		put(fmt.Sprintf("d/name.%03d", i), "", nil)
	}
	put("d/name/", "", map[string]string{MetaMode: "16877"}) // 040755

	skipped := map[string]string{}
	newFinder := func(bodies *Bodies) *Finder {
		return &Finder{Store: b, Dirs: NewDirCaches(MaxIdleCacheEntries, nil), Bodies: bodies,
			Skip: func(key, reason string) { skipped[key] = reason }}
	}
	bodies := NewBodies(BodiesLimit, time.Minute, nil)
	f := newFinder(bodies)
	for _, tt := range []struct {
		name      string
		found     bool
		dir       bool
		mode      uint32 // 0: not checked
		size      int64
		peekBytes string // kept by Bodies, "" for none
	}{
		{name: "small.txt", found: true, size: 10, peekBytes: "ten bytes!"},
		{name: "sub", found: true, dir: true, mode: 0o40700},
		{name: "imp", found: true, dir: true},
		{name: "both", found: true, dir: true},
		{name: "name", found: true, dir: true, mode: 0o40755},
		{name: "missing"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e, found, err := f.Probe(ctx, "d", tt.name)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case found != tt.found:
				t.Fatalf("found %v, want %v", found, tt.found)
			case !found:
				return
			case e.Dir != tt.dir || !e.Meta:
				t.Errorf("dir %v, metadata read %v; want dir %v, read", e.Dir, e.Meta, tt.dir)
			case tt.mode != 0 && e.Mode != tt.mode:
				t.Errorf("mode %o, want %o", e.Mode, tt.mode)
			case !tt.dir && e.Size != tt.size:
				t.Errorf("size %d, want %d", e.Size, tt.size)
			}
			if tt.peekBytes != "" {
				p := make([]byte, len(tt.peekBytes))
				if n, ok := bodies.Read("d/"+tt.name, e.ETag, p, 0); !ok || string(p[:n]) != tt.peekBytes {
					t.Errorf("bytes kept for the read: %q, %v; want %q", p[:n], ok, tt.peekBytes)
				}
			}
		})
	}
	if _, ok := skipped["d/both"]; !ok {
		t.Errorf("the file hidden by a directory of its name was not reported (skipped: %v)", skipped)
	}
	// Without Bodies, a lookup reads metadata only.
	e, found, err := newFinder(nil).Probe(ctx, "d", "small.txt")
	if err != nil || !found || e.Size != 10 {
		t.Errorf("without Bodies: %v, %v, size %d; want found, size 10", err, found, e.Size)
	}
}
