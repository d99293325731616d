package vfs

import (
	"bytes"
	"testing"
	"time"
)

// TestBodies: what a lookup kept of a small file serves the reads of that
// version within the TTL, and nothing else.
func TestBodies(t *testing.T) {
	now := time.Unix(1000, 0)
	clock := func() time.Time { return now }
	data := []byte("0123456789")
	for _, tc := range []struct {
		name    string
		whole   bool
		etag    string
		off     int64
		n       int
		after   time.Duration
		want    string
		wantOK  bool
		comment string
	}{
		{name: "all of it", whole: true, etag: "e", n: 10, want: "0123456789", wantOK: true},
		{name: "a middle range", whole: true, etag: "e", off: 3, n: 4, want: "3456", wantOK: true},
		{name: "across the end", whole: true, etag: "e", off: 8, n: 100, want: "89", wantOK: true},
		{name: "past the end", whole: true, etag: "e", off: 10, n: 5, want: "", wantOK: true},
		{name: "another version", whole: true, etag: "f", n: 10},
		{name: "the start of a larger object", etag: "e", n: 10, want: "0123456789", wantOK: true},
		{name: "past what was kept of a larger object", etag: "e", off: 5, n: 10},
		{name: "expired", whole: true, etag: "e", n: 10, after: time.Minute},
		{name: "just in time", whole: true, etag: "e", n: 10, after: 59 * time.Second, want: "0123456789", wantOK: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now = time.Unix(1000, 0)
			b := NewBodies(1<<20, time.Minute, clock)
			b.Keep("k", "e", data, tc.whole)
			now = now.Add(tc.after)
			p := make([]byte, tc.n)
			n, ok := b.Read("k", tc.etag, p, tc.off)
			if ok != tc.wantOK || (ok && string(p[:n]) != tc.want) {
				t.Errorf("read: %q, %v; want %q, %v", p[:n], ok, tc.want, tc.wantOK)
			}
		})
	}
}

// TestBodiesBounded: the oldest go past the limit; a TTL of 0 (no
// metadata caching) keeps nothing; a body larger than the limit is not kept.
func TestBodiesBounded(t *testing.T) {
	b := NewBodies(25, time.Minute, nil)
	for _, k := range []string{"a", "b", "c"} {
		b.Keep(k, "e", bytes.Repeat([]byte(k), 10), true)
	}
	p := make([]byte, 10)
	for k, want := range map[string]bool{"a": false, "b": true, "c": true} {
		if _, ok := b.Read(k, "e", p, 0); ok != want {
			t.Errorf("%s kept: %v, want %v", k, ok, want)
		}
	}
	b.Keep("big", "e", make([]byte, 26), true)
	if _, ok := b.Read("big", "e", p, 0); ok {
		t.Error("a body larger than the limit was kept")
	}
	off := NewBodies(1<<20, 0, nil)
	off.Keep("a", "e", []byte("x"), true)
	if _, ok := off.Read("a", "e", p[:1], 0); ok {
		t.Error("kept with a TTL of 0")
	}
}
