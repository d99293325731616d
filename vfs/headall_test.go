package vfs

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"mount-ws/bucket"
	"mount-ws/bucket/buckettest"
)

// failingHeads is a Header whose HEADs of keys containing fails fail.
type failingHeads struct {
	*bucket.Bucket
	fails string
}

func (f failingHeads) Head(ctx context.Context, key string) (bucket.Object, error) {
	if strings.Contains(key, f.fails) {
		return bucket.Object{}, errInjected
	}
	return f.Bucket.Head(ctx, key)
}

// TestHeadAll: the metadata of a directory's entries, read with a HEAD
// each: a file's, a marker's (a directory's size and ETag are not its
// marker's), an implicit directory's defaults, a file gone since it was
// listed, and a HEAD that failed, kept apart.
func TestHeadAll(t *testing.T) {
	b, _ := buckettest.NewFake(t)
	ctx := t.Context()
	for key, mode := range map[string]string{"d/file": "33261", "d/sub/": "16832"} { // 0100755, 040700
		if _, err := b.Put(ctx, key, bytes.NewReader([]byte("x")), 1, bucket.Meta{User: map[string]string{MetaMode: mode}}); err != nil {
			t.Fatal(err)
		}
	}
	entries := map[string]Entry{
		"file":     {Size: 1},
		"sub":      {Dir: true},
		"implicit": {Dir: true},
		"gone":     {Size: 5},
		"broken":   {Size: 7},
	}
	found, failed := HeadAll(ctx, failingHeads{b, "broken"}, "d/", entries)
	if len(found) != 4 || len(failed) != 1 || !errors.Is(failed["broken"], errInjected) {
		t.Fatalf("found %d, failed %v; want 4 found and broken failed", len(found), failed)
	}
	for name, want := range map[string]struct {
		mode uint32
		gone bool
	}{
		"file":     {0o100755, false},
		"sub":      {0o40700, false},
		"implicit": {0, false}, // no marker: no mode stored, the mount's default shows
		"gone":     {0, true},
	} {
		r, ok := found[name]
		switch {
		case !ok:
			t.Errorf("%s: not found", name)
		case r.Gone != want.gone:
			t.Errorf("%s: gone %v, want %v", name, r.Gone, want.gone)
		case !want.gone && (!r.Entry.Meta || r.Entry.Mode != want.mode):
			t.Errorf("%s: meta %v, mode %o; want read, mode %o", name, r.Entry.Meta, r.Entry.Mode, want.mode)
		}
	}
	if s := found["sub"].Entry; s.Size != 0 || s.ETag != "" || !s.Dir {
		t.Errorf("sub: size %d, ETag %q, dir %v; want a directory with no size or ETag of its marker's", s.Size, s.ETag, s.Dir)
	}
}
