package vfs

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"mount-ws/bucket"
)

// page makes a page of keys as bucket.ListFrom returns it: sorted, cut
// after max keys.
func page(max int, keys ...string) bucket.KeysFrom {
	slices.Sort(keys)
	p := bucket.KeysFrom{}
	if len(keys) > max {
		keys, p.Truncated = keys[:max], true
	}
	for _, k := range keys {
		p.Objects = append(p.Objects, bucket.Object{Key: k, Size: int64(len(k)), ETag: `"` + k + `"`})
	}
	if len(keys) > 0 {
		p.Last = keys[len(keys)-1]
	}
	return p
}

func noSkip(string, string) {}

// kinds summarises learned entries: "d" a directory with the defaults,
// "m" one whose marker is to be read, "f" a file.
func kinds(learned map[string]map[string]Entry) map[string]string {
	out := map[string]string{}
	for dir, entries := range learned {
		for name, e := range entries {
			k := "f"
			switch {
			case e.Dir && e.Meta:
				k = "d"
			case e.Dir:
				k = "m"
			}
			out[ChildKey(dir, name)] = k
		}
	}
	return out
}

func TestReadProbe(t *testing.T) {
	tests := []struct {
		name      string
		dir, look string
		page      bucket.KeysFrom
		file      bool
		isDir     bool
		marker    bool
		sure      bool
		learned   map[string]string
	}{
		{
			name: "nothing", dir: "a", look: "x", page: page(1000),
			sure: true, learned: map[string]string{},
		},
		{
			name: "a file", dir: "a", look: "x", page: page(1000, "a/x"),
			file: true, sure: true, learned: map[string]string{"a/x": "f"},
		},
		{
			name: "a directory and what is in it", dir: "", look: "full",
			page:  page(1000, "full/cat/o1", "full/cat/o2", "full/big/b"),
			isDir: true, sure: true,
			learned: map[string]string{"full": "d", "full/cat": "d", "full/big": "d", "full/cat/o1": "f", "full/cat/o2": "f", "full/big/b": "f"},
		},
		{
			name: "a directory hides a file of the same name", dir: "a", look: "x",
			page: page(1000, "a/x", "a/x/y"),
			file: true, isDir: true, sure: true,
			learned: map[string]string{"a/x": "d", "a/x/y": "f"},
		},
		{
			name: "a marker", dir: "a", look: "x", page: page(1000, "a/x/", "a/x/y/", "a/x/y/z"),
			isDir: true, marker: true, sure: true,
			learned: map[string]string{"a/x": "m", "a/x/y": "m", "a/x/y/z": "f"},
		},
		{
			// The page ends inside cat: its last key may yet be a
			// directory, the others cannot.
			name: "a page that stops inside a directory", dir: "", look: "full",
			page:  page(3, "full/cat/o1", "full/cat/o2", "full/cat/o3", "full/cat/o4"),
			isDir: true, sure: true,
			learned: map[string]string{"full": "d", "full/cat": "d", "full/cat/o1": "f", "full/cat/o2": "f"},
		},
		{
			// Siblings that sort before x/ filled the page: whether x is
			// a directory is not known, and x itself may be one.
			name: "a page filled before name/", dir: "a", look: "x",
			page: page(2, "a/x", "a/x-1", "a/x.txt", "a/x/y"),
			file: true, learned: map[string]string{},
		},
		{
			name: "odd keys are skipped", dir: "a", look: "x",
			page:  page(1000, "a/x//y", "a/x/./z", "a/x/ok"),
			isDir: true, sure: true,
			learned: map[string]string{"a/x": "d", "a/x/ok": "f"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pr := ReadProbe(tt.dir, tt.look, tt.page, noSkip)
			if (pr.File != nil) != tt.file || pr.Dir != tt.isDir || pr.Marker != tt.marker || pr.Sure != tt.sure {
				t.Errorf("file %v dir %v marker %v sure %v; want %v %v %v %v",
					pr.File != nil, pr.Dir, pr.Marker, pr.Sure, tt.file, tt.isDir, tt.marker, tt.sure)
			}
			if got := kinds(pr.Learned); !maps.Equal(got, tt.learned) {
				t.Errorf("learned %v\nwant    %v", got, tt.learned)
			}
		})
	}
}

// FuzzLearnFrom holds LearnFrom to what a page can prove, on any keys: a
// learned file has no key under it in the page, and the page reached past
// where one could be; a learned directory has a key under it; every name
// is a valid file name.
func FuzzLearnFrom(f *testing.F) {
	f.Add("a/b/c\na/b/d\na/e", 2)
	f.Add("x\nx/\nx//y\nx/./z\nx.txt", 3)
	f.Add("d/\nd/e/f\nd/e", 10)
	f.Fuzz(func(t *testing.T, keys string, max int) {
		if max < 1 || max > 50 {
			return
		}
		var ks []string
		for k := range strings.SplitSeq(keys, "\n") {
			if k != "" && !slices.Contains(ks, k) {
				ks = append(ks, k)
			}
		}
		p := page(max, ks...)
		for path, kind := range kinds(LearnFrom("", p, noSkip)) {
			for name := range strings.SplitSeq(path, "/") {
				if NameProblem(name) != "" {
					t.Fatalf("learned %q: bad name %q", path, name)
				}
			}
			under := slices.ContainsFunc(p.Objects, func(o bucket.Object) bool { return strings.HasPrefix(o.Key, path+"/") })
			if kind == "f" {
				if under {
					t.Fatalf("learned %q as a file with keys under it", path)
				}
				if p.Truncated && p.Last < path+"0" {
					t.Fatalf("learned %q as a file, but the page stopped at %q", path, p.Last)
				}
			} else if !under {
				t.Fatalf("learned %q as a directory with nothing under it", path)
			}
		}
	})
}

// TestDirCachesLearn: learned entries answer within the TTL; a change
// made through the mount meanwhile keeps a page from being learned; a
// name removed stays removed; a listing wins.
func TestDirCachesLearn(t *testing.T) {
	now := time.Unix(1000, 0)
	clock := func() time.Time { return now }
	cs := NewDirCaches(MaxIdleCacheEntries, clock)
	learned := map[string]map[string]Entry{
		"a":   {"b": {Dir: true, Meta: true}},
		"a/b": {"f": {Size: 1}, "g": {Size: 2}},
	}

	since := cs.Changes()
	c := cs.Hold("a/b")
	c.Set("g", nil) // removed here while the page was read
	cs.Learn(learned, nil, since)
	if _, ok := c.Learned("f", time.Minute); ok {
		t.Fatal("a page read before a change was learned")
	}

	cs.Learn(learned, nil, cs.Changes())
	if e, ok := c.Learned("f", time.Minute); !ok || e.Size != 1 {
		t.Fatalf("f not learned: %v %v", e, ok)
	}
	if _, ok := c.Learned("g", time.Minute); ok {
		t.Error("a name removed here was learned again")
	}
	// A directory no node holds yet keeps what it learned for its node.
	if e, ok := cs.Hold("a").Learned("b", time.Minute); !ok || !e.Dir {
		t.Errorf("a/b not learned in a: %v %v", e, ok)
	}

	// A lookup's own answer (a HEAD) replaces what the page said, for the
	// next lookup after the kernel forgot the node; not found, it goes.
	c.Remember("f", Entry{Size: 5, Meta: true}, true)
	if e, ok := c.Learned("f", time.Minute); !ok || e.Size != 5 || !e.Meta {
		t.Errorf("after a lookup's HEAD: %v %v, want its entry", e, ok)
	}
	c.Remember("f", Entry{}, false)
	if _, ok := c.Learned("f", time.Minute); ok {
		t.Error("a name found missing still answered from the page")
	}
	cs.Learn(learned, nil, cs.Changes())

	c.Set("f", &Entry{Size: 9})
	if _, ok := c.Learned("f", time.Minute); ok {
		t.Error("a name changed here still answered from the page")
	}
	cs.Learn(learned, nil, cs.Changes())
	now = now.Add(2 * time.Minute)
	if _, ok := c.Learned("f", time.Minute); ok {
		t.Error("learned entry outlived its TTL")
	}

	cs.Learn(learned, nil, cs.Changes())
	c.Install(map[string]Entry{"h": {}}, 0, c.Generation())
	if _, ok := c.Learned("f", time.Minute); ok {
		t.Error("learned entries kept beside a listing")
	}
	cs.Learn(learned, nil, cs.Changes())
	if _, ok := c.Learned("f", time.Minute); ok {
		t.Error("a page learned into a directory with a fresh listing")
	}
}

func TestSeedsFrom(t *testing.T) {
	// The lookup of "full": a page of 4 keys that stops inside cat.
	p := page(4, "full/big/a", "full/cat/", "full/cat/o1", "full/cat/sub/x", "full/cat/o2")
	seeds := SeedsFrom("full", p)
	type want struct {
		objs, prefixes string
		after          string
	}
	got := map[string]want{}
	for dir, s := range seeds {
		got[dir] = want{fmt.Sprint(keys(s.Page.Objects)), fmt.Sprint(s.Page.Prefixes), s.After}
	}
	// Sorted: full/big/a, full/cat/, full/cat/o1, full/cat/o2 | full/cat/sub/x.
	exp := map[string]want{
		"full":     {"[]", "[full/big/ full/cat/]", "full/cat/o2"},
		"full/big": {"[full/big/a]", "[]", ""},
		"full/cat": {"[full/cat/ full/cat/o1 full/cat/o2]", "[]", "full/cat/o2"},
	}
	if !maps.Equal(got, exp) {
		t.Errorf("seeds\n%v\nwant\n%v", got, exp)
	}
	if s := seeds["full/big"]; s.Page.Next != "" {
		t.Error("a directory the page held whole is not a whole listing")
	}
	if s := seeds["full/cat"]; s.Page.Next == "" {
		t.Error("a directory the page stopped in is taken for whole")
	}
}

func keys(objs []bucket.Object) []string {
	var ks []string
	for _, o := range objs {
		ks = append(ks, o.Key)
	}
	return ks
}

// TestSeedTakenOnce: a seed starts one listing, within the TTL, and a
// change here drops it.
func TestSeedTakenOnce(t *testing.T) {
	now := time.Unix(1000, 0)
	cs := NewDirCaches(MaxIdleCacheEntries, func() time.Time { return now })
	c := cs.Hold("d")
	seed := Seed{Page: bucket.Page{Objects: []bucket.Object{{Key: "d/x"}}}}
	cs.Learn(nil, map[string]Seed{"d": seed}, cs.Changes())
	if _, _, ok := c.TakeSeed(time.Minute); !ok {
		t.Fatal("seed not kept")
	}
	if _, _, ok := c.TakeSeed(time.Minute); ok {
		t.Error("a seed started two listings")
	}
	cs.Learn(nil, map[string]Seed{"d": seed}, cs.Changes())
	c.Set("y", &Entry{})
	if _, _, ok := c.TakeSeed(time.Minute); ok {
		t.Error("a seed outlived a change here")
	}
	cs.Learn(nil, map[string]Seed{"d": seed}, cs.Changes())
	now = now.Add(2 * time.Minute)
	if _, _, ok := c.TakeSeed(time.Minute); ok {
		t.Error("a seed outlived the TTL")
	}
}
