package fs

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"mount-ws/vfs"
)

// TestDirCaches: a directory's cache outlives its node, is shared by the
// next node made for its path, follows a rename with everything below it,
// and goes with a removal; caches no node holds are bounded by entries.
func TestDirCaches(t *testing.T) {
	listed := func(names ...string) map[string]vfs.Entry {
		m := make(map[string]vfs.Entry)
		for _, n := range names {
			m[n] = vfs.Entry{Size: 1}
		}
		return m
	}
	keys := func(cs *dirCaches) []string {
		return slices.Sorted(maps.Keys(cs.byKey))
	}
	t.Run("kept for the next node", func(t *testing.T) {
		cs := newDirCaches(100)
		c := cs.hold("a")
		c.listing, c.listedAt = listed("x", "y"), time.Now()
		cs.release(c)
		if again := cs.hold("a"); again != c || len(again.listing) != 2 {
			t.Errorf("a node made again for a/ got %p with %d entries, want the first node's cache %p", again, len(again.listing), c)
		}
		if cs.idleEntries != 0 || cs.idle.Len() != 0 {
			t.Errorf("a held cache is still counted idle: %d entries, %d caches", cs.idleEntries, cs.idle.Len())
		}
	})
	t.Run("two nodes share one", func(t *testing.T) {
		cs := newDirCaches(0) // every idle cache is dropped at once
		c1, c2 := cs.hold("a"), cs.hold("a")
		if c1 != c2 {
			t.Fatal("two nodes of one path got two caches")
		}
		cs.release(c1)
		if got := cs.hold("a"); got != c1 {
			t.Error("a cache still held by a node was dropped")
		}
	})
	t.Run("bounded by entries, least recently released first", func(t *testing.T) {
		cs := newDirCaches(10) // an idle cache counts its entries and 1
		for i := range 4 {
			c := cs.hold(fmt.Sprint("d", i))
			c.listing = listed("1", "2", "3")
			cs.release(c)
		}
		if got, want := keys(cs), []string{"d2", "d3"}; !slices.Equal(got, want) {
			t.Errorf("kept %v, want %v (4 entries each, 10 at most)", got, want)
		}
		if cs.idleEntries != 8 {
			t.Errorf("idle entries %d, want 8", cs.idleEntries)
		}
	})
	t.Run("rename moves the subtree", func(t *testing.T) {
		cs := newDirCaches(100)
		for _, k := range []string{"a", "a/b", "a/b/c", "ab", "z", "z/old"} {
			cs.hold(k)
		}
		b := cs.byKey["a/b"]
		cs.move("a", "z")
		if got, want := keys(cs), []string{"ab", "z", "z/b", "z/b/c"}; !slices.Equal(got, want) {
			t.Errorf("after renaming a to z: %v, want %v (z's old caches dropped, ab untouched)", got, want)
		}
		if cs.byKey["z/b"] != b || b.key != "z/b" {
			t.Errorf("a/b's cache is not z/b's now (key %q)", b.key)
		}
	})
	t.Run("removal and forget", func(t *testing.T) {
		cs := newDirCaches(100)
		for _, k := range []string{"a", "a/b", "ab"} {
			c := cs.hold(k)
			c.listing, c.missing = listed("x"), map[string]time.Time{"y": time.Now()}
		}
		cs.forget("a")
		for k, c := range cs.byKey {
			if gone := c.listing == nil && c.missing == nil; gone != (k != "ab") {
				t.Errorf("%s after forgetting a: listing %v, missing %v", k, c.listing, c.missing)
			}
		}
		held := cs.byKey["a/b"]
		cs.drop("a")
		if got := keys(cs); !slices.Equal(got, []string{"ab"}) {
			t.Errorf("after removing a: %v, want [ab]", got)
		}
		cs.release(held) // the node of a removed directory is forgotten later
		if cs.idle.Len() != 0 || len(cs.byKey) != 1 {
			t.Errorf("the removed directory's cache came back: %v", keys(cs))
		}
	})
}
