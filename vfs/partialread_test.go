package vfs

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"mount-ws/bucket"
	"mount-ws/bucket/buckettest"
)

// countingLists is a ListStore that counts its requests.
type countingLists struct {
	*bucket.Bucket
	lists atomic.Int32
}

func (c *countingLists) List(ctx context.Context, dir, continuation string) (bucket.Page, error) {
	c.lists.Add(1)
	return c.Bucket.List(ctx, dir, continuation)
}

func (c *countingLists) ListAfter(ctx context.Context, dir, after string) (bucket.Page, error) {
	c.lists.Add(1)
	return c.Bucket.ListAfter(ctx, dir, after)
}

// TestPartialRead: a directory's listing read page by page from the
// in-memory S3 (pages of 1,000 keys): whole, cut short by a page limit
// (the directory is then too big to list for lookups), and started from
// what a lookup's page already showed of it (no LIST at all when that
// was the whole directory).
func TestPartialRead(t *testing.T) {
	b, _ := buckettest.NewFake(t)
	ctx := t.Context()
	for i := range 2500 {
		if _, err := b.Put(ctx, fmt.Sprintf("big/f-%04d", i), bytes.NewReader(nil), 0, bucket.Meta{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"small/a", "small/b", "small/c"} {
		if _, err := b.Put(ctx, k, bytes.NewReader(nil), 0, bucket.Meta{}); err != nil {
			t.Fatal(err)
		}
	}
	s := &countingLists{Bucket: b}
	skip := func(string, string) {}
	read := func(cs *DirCaches, dir string, maxPages int) (*DirCache, map[string]Entry, bool) {
		t.Helper()
		c := cs.Hold(dir)
		p, _ := c.StartListing(ListingPrefix(dir))
		defer p.End()
		complete, err := p.Read(ctx, s, maxPages, time.Minute, skip)
		if err != nil {
			t.Fatal(err)
		}
		return c, p.Entries(), complete
	}

	cs := NewDirCaches(MaxIdleCacheEntries, nil)
	s.lists.Store(0)
	if _, entries, complete := read(cs, "big", 0); !complete || len(entries) != 2500 || s.lists.Load() != 3 {
		t.Errorf("whole listing: complete %v, %d entries in %d LISTs; want complete, 2500 in 3", complete, len(entries), s.lists.Load())
	}
	if c, _, complete := read(NewDirCaches(MaxIdleCacheEntries, nil), "big", 2); complete || !c.TooBig() {
		t.Errorf("listing cut at 2 pages: complete %v, too big %v; want false, true", complete, c.TooBig())
	}

	// A lookup of "small" read one page of the keys that begin with it:
	// the whole directory. Its listing then needs no LIST.
	f := &Finder{Store: b, Dirs: cs, Skip: skip}
	if _, found, err := f.Probe(ctx, "", "small"); err != nil || !found {
		t.Fatalf("probe of small: %v, %v", found, err)
	}
	s.lists.Store(0)
	if _, entries, complete := read(cs, "small", 0); !complete || len(entries) != 3 || s.lists.Load() != 0 {
		t.Errorf("listing after a lookup's page showed it all: complete %v, %d entries, %d LISTs; want complete, 3, none", complete, len(entries), s.lists.Load())
	}
}
