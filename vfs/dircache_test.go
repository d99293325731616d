package vfs

import (
	"fmt"
	"maps"
	"mount-ws/bucket"
	"runtime"
	"slices"
	"testing"
	"time"
)

// TestDirCaches: a directory's cache outlives its node, is shared by the
// next node made for its path, follows a rename with everything below it,
// and goes with a removal; caches no node holds are bounded by entries.
func TestDirCaches(t *testing.T) {
	listed := func(names ...string) map[string]Entry {
		m := make(map[string]Entry)
		for _, n := range names {
			m[n] = Entry{Size: 1}
		}
		return m
	}
	keys := func(cs *DirCaches) []string {
		return slices.Sorted(maps.Keys(cs.byKey))
	}
	t.Run("kept for the next node", func(t *testing.T) {
		cs := NewDirCaches(100, time.Now)
		c := cs.Hold("a")
		c.Install(listed("x", "y"), 0, c.Generation())
		cs.Release(c)
		if again := cs.Hold("a"); again != c || again.listing.len() != 2 {
			t.Errorf("a node made again for a/ got %p with %d entries, want the first node's cache %p", again, again.listing.len(), c)
		}
		if cs.idleEntries != 0 || cs.idle.Len() != 0 {
			t.Errorf("a held cache is still counted idle: %d entries, %d caches", cs.idleEntries, cs.idle.Len())
		}
	})
	t.Run("two nodes share one", func(t *testing.T) {
		cs := NewDirCaches(0, time.Now) // every idle cache is dropped at once
		c1, c2 := cs.Hold("a"), cs.Hold("a")
		if c1 != c2 {
			t.Fatal("two nodes of one path got two caches")
		}
		cs.Release(c1)
		if got := cs.Hold("a"); got != c1 {
			t.Error("a cache still held by a node was dropped")
		}
	})
	t.Run("bounded by entries, least recently released first", func(t *testing.T) {
		cs := NewDirCaches(10, time.Now) // an idle cache counts its entries and 1
		for i := range 4 {
			c := cs.Hold(fmt.Sprint("d", i))
			c.Install(listed("1", "2", "3"), 0, c.Generation())
			cs.Release(c)
		}
		if got, want := keys(cs), []string{"d2", "d3"}; !slices.Equal(got, want) {
			t.Errorf("kept %v, want %v (4 entries each, 10 at most)", got, want)
		}
		if cs.idleEntries != 8 {
			t.Errorf("idle entries %d, want 8", cs.idleEntries)
		}
	})
	t.Run("rename moves the subtree", func(t *testing.T) {
		cs := NewDirCaches(100, time.Now)
		for _, k := range []string{"a", "a/b", "a/b/c", "ab", "z", "z/old"} {
			cs.Hold(k)
		}
		b := cs.byKey["a/b"]
		cs.Move("a", "z")
		if got, want := keys(cs), []string{"ab", "z", "z/b", "z/b/c"}; !slices.Equal(got, want) {
			t.Errorf("after renaming a to z: %v, want %v (z's old caches dropped, ab untouched)", got, want)
		}
		if cs.byKey["z/b"] != b || b.key != "z/b" {
			t.Errorf("a/b's cache is not z/b's now (key %q)", b.key)
		}
	})
	t.Run("removal and forget", func(t *testing.T) {
		cs := NewDirCaches(100, time.Now)
		for _, k := range []string{"a", "a/b", "ab"} {
			c := cs.Hold(k)
			c.listing, c.missing = newListing(listed("x")), map[string]time.Time{"y": time.Now()}
		}
		cs.Forget("a")
		for k, c := range cs.byKey {
			if gone := c.listing == nil && c.missing == nil; gone != (k != "ab") {
				t.Errorf("%s after forgetting a: listing %v, missing %v", k, c.listing, c.missing)
			}
		}
		held := cs.byKey["a/b"]
		cs.Drop("a")
		if got := keys(cs); !slices.Equal(got, []string{"ab"}) {
			t.Errorf("after removing a: %v, want [ab]", got)
		}
		cs.Release(held) // the node of a removed directory is forgotten later
		if cs.idle.Len() != 0 || len(cs.byKey) != 1 {
			t.Errorf("the removed directory's cache came back: %v", keys(cs))
		}
	})
}

// TestDirCacheAnswers: what a directory's cache answers, as time passes on
// a clock of the test's own.
func TestDirCacheAnswers(t *testing.T) {
	now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	c := NewDirCaches(100, func() time.Time { return now }).Hold("d")
	const ttl, negTTL = 10 * time.Second, 5 * time.Second
	lookup := func(name string) string {
		e, known, found := c.Lookup(name, ttl, negTTL)
		switch {
		case !known:
			return "ask"
		case !found:
			return "missing"
		case e.Meta:
			return fmt.Sprintf("size %d, metadata read", e.Size)
		}
		return fmt.Sprintf("size %d", e.Size)
	}
	want := func(name, answer string) {
		t.Helper()
		if got := lookup(name); got != answer {
			t.Errorf("at %v: lookup %s = %q, want %q", now.Format(time.TimeOnly), name, got, answer)
		}
	}

	want("a", "ask")
	c.Remember("gone", Entry{}, false)
	want("gone", "missing")
	now = now.Add(negTTL)
	want("gone", "ask") // the negative cache lasts negTTL

	c.Install(map[string]Entry{"a": {Size: 1}, "b": {Size: 2}, "sub": {Dir: true}}, time.Second, c.Generation())
	want("a", "size 1")
	want("nothing", "missing")
	c.Set("new", &Entry{Size: 3, Meta: true})
	want("new", "size 3, metadata read")
	c.Set("b", nil)
	want("b", "missing")

	// The first entry asked for is read alone, the second starts a batch.
	if got := c.MetaWanted(false, "a"); !slices.Equal(slices.Sorted(maps.Keys(got)), []string{"a"}) {
		t.Errorf("first metadata wanted: %v, want a alone", got)
	}
	c.MetaRead(map[string]MetaResult{"a": {Entry: Entry{Size: 1, Meta: true}}})
	c.Set("c", &Entry{Size: 4})
	c.Set("e", &Entry{Size: 6})
	if got := c.MetaWanted(false, "c"); !slices.Equal(slices.Sorted(maps.Keys(got)), []string{"c", "e"}) {
		t.Errorf("second metadata wanted: %v, want every file not read yet (c and e)", got)
	}
	c.MetaRead(map[string]MetaResult{"c": {Gone: true}, "e": {Entry: Entry{Size: 6, Meta: true}}})
	want("a", "size 1, metadata read")
	want("c", "missing")

	now = now.Add(ttl - time.Nanosecond)
	want("a", "size 1, metadata read")
	now = now.Add(time.Nanosecond)
	want("a", "ask")                             // the listing lasts ttl
	if n, fresh := c.Len(ttl); fresh || n != 4 { // a, new, sub, e
		t.Errorf("Len after the TTL: %d entries, fresh %v; want 4, stale", n, fresh)
	}
	// A new listing keeps what was read of the same version.
	c.Install(map[string]Entry{"a": {Size: 1}, "new": {Size: 5, ETag: "v2"}, "sub": {Dir: true}}, 0, c.Generation())
	want("a", "size 1, metadata read") // the same version
	want("new", "size 5")              // another version
	var got []string
	c.EachName(func(name string, kind uint32) { got = append(got, fmt.Sprintf("%s %o", name, kind)) })
	slices.Sort(got)
	if want := []string{"a 100000", "new 100000", "sub 40000"}; !slices.Equal(got, want) {
		t.Errorf("EachName: %v, want %v", got, want)
	}

	// A listing that took longer than the TTL to read (a huge directory)
	// lasts as long as it took: a walk of it must find its entries.
	c.Install(map[string]Entry{"a": {Size: 1}}, 3*ttl, c.Generation())
	now = now.Add(2 * ttl)
	want("a", "size 1, metadata read")
	now = now.Add(ttl)
	want("a", "ask")

	// A listing started before the cache was forgotten (a rename of the
	// directory meanwhile) is not kept.
	cs := NewDirCaches(100, func() time.Time { return now })
	r := cs.Hold("r")
	gen := r.Generation()
	cs.Forget("r")
	if r.Install(map[string]Entry{"old": {Size: 1}}, 0, gen) {
		t.Error("a listing started before a rename's forget was kept")
	}
	if _, known, _ := r.Lookup("old", ttl, negTTL); known {
		t.Error("a listing started before a rename's forget answers lookups")
	}

	// A TTL of 0 (--metadata-ttl 0) caches nothing, however long the
	// listing took.
	c.Install(map[string]Entry{"a": {Size: 1}}, time.Hour, c.Generation())
	if _, known, _ := c.Lookup("a", 0, 0); known {
		t.Error("with a TTL of 0, a listing that took an hour answered a lookup")
	}
}

// TestListingMemoryPerEntry: what one entry of a listing costs in memory,
// as the README states it (a directory of a million objects must not cost
// a gigabyte). Names and ETags are as long as typical ones.
func TestListingMemoryPerEntry(t *testing.T) {
	const n, perPage = 100_000, 1000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	entries := make(map[string]Entry)
	for p := range n / perPage {
		objs := make([]bucket.Object, perPage)
		for i := range objs {
			objs[i] = bucket.Object{
				Key:  fmt.Sprintf("data/part-%07d.parquet", p*perPage+i),
				Size: 1 << 20, ETag: fmt.Sprintf("\"%032x\"", p*perPage+i), LastModified: time.Now(),
			}
		}
		AddListing(entries, "data/", bucket.Page{Objects: objs}, func(string, string) {})
	}
	c := NewDirCaches(MaxIdleCacheEntries, time.Now).Hold("data")
	c.Install(entries, 0, c.Generation())
	entries = nil
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / n
	t.Logf("%d bytes per listed entry", per)
	if per > 185 {
		t.Errorf("a listed entry costs %d bytes, want at most 185 (README: about 160)", per)
	}
	runtime.KeepAlive(c)
}

func TestSubdirsFirstN(t *testing.T) {
	c := NewDirCaches(10, time.Now).Hold("d")
	entries := map[string]Entry{"file-b": {}, "file-z": {}}
	for _, name := range []string{"k", "c", "x", "a", "m", "e", "b", "q", "d"} {
		entries[name] = Entry{Dir: true}
	}
	c.Install(entries, 0, c.Generation())
	for _, tc := range []struct {
		after string
		n     int
		want  []string
	}{
		{"", 3, []string{"a", "b", "c"}},
		{"c", 4, []string{"d", "e", "k", "m"}},
		{"m", 8, []string{"q", "x"}},
		{"x", 8, []string{}},
	} {
		if got := c.Subdirs(tc.after, tc.n); !slices.Equal(got, tc.want) {
			t.Errorf("Subdirs(%q, %d) = %v, want %v", tc.after, tc.n, got, tc.want)
		}
	}
}

// TestDirCachesSet: a change, or what the storage said, recorded by path
// reaches the directory's cache whether a node holds it or it is idle,
// and makes none where the mount keeps none.
func TestDirCachesSet(t *testing.T) {
	cs := NewDirCaches(MaxIdleCacheEntries, nil)
	c := cs.Hold("d")
	c.InstallEmpty()
	cs.Set("d/held", &Entry{Size: 3})
	cs.Release(c) // the kernel forgot the directory
	cs.Set("d/idle", &Entry{Size: 4})
	cs.Remember("d/found", Entry{Size: 6}, true)
	cs.Set("other/x", &Entry{Size: 5})
	c = cs.Hold("d")
	for name, size := range map[string]int64{"held": 3, "idle": 4, "found": 6} {
		if e, found, listed := c.Listed(name); !listed || !found || e.Size != size {
			t.Errorf("%s after Set: listed %v, found %v, size %d; want size %d", name, listed, found, e.Size, size)
		}
	}
	cs.mu.Lock()
	_, made := cs.byKey["other"]
	cs.mu.Unlock()
	if made {
		t.Error("Set made a cache for a directory the mount kept none of")
	}
}

// TestDirCachesSetKeepsTheIdleBound: entries recorded by path in an idle
// directory cache count against the idle bound, which drops the cache
// once they pass it.
func TestDirCachesSetKeepsTheIdleBound(t *testing.T) {
	cs := NewDirCaches(4, nil)
	c := cs.Hold("d")
	c.InstallEmpty()
	cs.Release(c)
	for _, name := range []string{"a", "b", "c", "e"} {
		cs.Set("d/"+name, &Entry{Size: 1})
	}
	cs.mu.Lock()
	_, kept := cs.byKey["d"]
	idle := cs.idleEntries
	cs.mu.Unlock()
	if kept || idle > 4 {
		t.Errorf("an idle cache grown past the bound of 4 entries: kept %v, %d entries counted idle", kept, idle)
	}
}
