package vfs

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"mount-ws/bucket"
)

func TestAddListing(t *testing.T) {
	long := strings.Repeat("n", 256)
	page := bucket.Page{
		Prefixes: []string{"d/sub/", "d//", "d/x/", "d/../", "d/" + long + "/"},
		Objects: []bucket.Object{
			{Key: "d/", Size: 0},                      // the directory's marker
			{Key: "d/file.csv", Size: 10, ETag: "e1"}, // plain file
			{Key: "d/x", Size: 5},                     // hidden by directory d/x/
			{Key: "d/.", Size: 1},
			{Key: "d/" + long, Size: 1},
		},
	}
	var skipped []string
	entries := map[string]Entry{}
	AddListing(entries, "d/", page, func(key, reason string) { skipped = append(skipped, key) })
	want := map[string]Entry{
		"sub":      {Dir: true},
		"x":        {Dir: true},
		"file.csv": {Size: 10, ETag: "e1"},
	}
	if len(entries) != len(want) {
		t.Errorf("entries %v, want %v", entries, want)
	}
	for name, e := range want {
		if !reflect.DeepEqual(entries[name], e) {
			t.Errorf("%s: %+v, want %+v", name, entries[name], e)
		}
	}
	if len(skipped) != 6 {
		t.Errorf("skipped %q, want 6 keys (//, .., long dir, hidden x, ., long file)", skipped)
	}
}

func TestNameProblem(t *testing.T) {
	for _, tt := range []struct {
		name string
		ok   bool
	}{
		{"a", true}, {"with space.csv", true}, {"ünïcode", true}, {strings.Repeat("a", 255), true},
		{"", false}, {".", false}, {"..", false}, {strings.Repeat("a", 256), false}, {"a/b", false}, {"a\x00", false},
	} {
		if got := NameProblem(tt.name) == ""; got != tt.ok {
			t.Errorf("NameProblem(%q) ok=%v, want %v", tt.name, got, tt.ok)
		}
	}
}

// FuzzAddListing: whatever keys a listing holds, every entry is a valid
// name directly under the listed directory, and nothing panics.
func FuzzAddListing(f *testing.F) {
	f.Add("d/", "d/a", "d/b/")
	f.Add("", "//x", "./")
	f.Add("a/", "a/../b", "a/x/")
	f.Fuzz(func(t *testing.T, prefix, objKey, subPrefix string) {
		entries := map[string]Entry{}
		page := bucket.Page{Objects: []bucket.Object{{Key: objKey}}, Prefixes: []string{subPrefix}}
		if !strings.HasPrefix(objKey, prefix) || !strings.HasPrefix(subPrefix, prefix) {
			return // a listing never returns keys outside its prefix
		}
		AddListing(entries, prefix, page, func(string, string) {})
		for name := range entries {
			if NameProblem(name) != "" {
				t.Errorf("entry %q is not a valid name", name)
			}
		}
	})
}

func TestXattrCodec(t *testing.T) {
	for _, tt := range []struct {
		name, stored string
		want         map[string][]byte
	}{
		{"as s3fs writes it", "%7B%22key%22%3A%22dmFsdWU%3D%22%7D", map[string][]byte{"key": []byte("value")}},
		{"empty", "", nil},
		{"not ours", "something else", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := ParseXattrs(tt.stored)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("parse %q: %q, want %q", tt.stored, got, tt.want)
			}
			if back := ParseXattrs(FormatXattrs(got)); len(got) > 0 && !reflect.DeepEqual(back, got) {
				t.Errorf("round trip of %q: %q", got, back)
			}
			// A value this codec cannot read survives a metadata rewrite.
			e := EntryFromObject(bucket.Object{Metadata: map[string]string{MetaXattr: tt.stored}})
			if md := ObjectMeta(e, "k", false).User; tt.stored != "" && md[MetaXattr] == "" {
				t.Errorf("xattr %q dropped by a rewrite", tt.stored)
			}
		})
	}
}

// FuzzMetadataCodec: any stored metadata decodes without panicking, and
// what mount-ws writes back decodes to the same times and attributes.
func FuzzMetadataCodec(f *testing.F) {
	f.Add("1700000000.5", "%7B%22key%22%3A%22dmFsdWU%3D%22%7D", "33188")
	f.Add("-1", "%7B", "x")
	f.Add("1", "%7B%7D", "0")
	f.Fuzz(func(t *testing.T, mtime, xattr, mode string) {
		e := EntryFromObject(bucket.Object{Metadata: map[string]string{MetaMtime: mtime, MetaXattr: xattr, MetaMode: mode}})
		back := EntryFromObject(bucket.Object{Metadata: ObjectMeta(e, "k", false).User})
		if !back.Mtime().Equal(e.Mtime()) || back.Mode != e.Mode || !reflect.DeepEqual(back.Xattrs(), e.Xattrs()) {
			t.Errorf("round trip: mtime %v → %v, mode %o → %o, xattrs %q → %q", e.Mtime(), back.Mtime(), e.Mode, back.Mode, e.Xattrs(), back.Xattrs())
		}
	})
}

// TestEntryExtrasCopied: copies of an entry share its extras (times, link
// target, xattrs, content type) until one of them changes: a change to a
// node's copy must never show through the listing's, nor the reverse. An
// entry given only zero values keeps none (a listing may hold millions).
func TestEntryExtrasCopied(t *testing.T) {
	var plain Entry
	plain.SetMtime(time.Time{})
	plain.SetLinkTarget("")
	plain.SetContentType("")
	if plain.more != nil {
		t.Errorf("zero values gave an entry extras: %+v", *plain.more)
	}

	t1, t2 := time.Unix(1700000000, 5), time.Unix(1800000000, 0)
	a := Entry{Size: 3}
	a.SetMtime(t1)
	a.SetLinkTarget("target-a")
	b := a
	b.SetMtime(t2)
	b.SetLinkTarget("target-b")
	b.SetContentType("text/csv")
	if errno := SetXattr(&b, "user.k", []byte("v"), 0); errno != 0 {
		t.Fatal(errno)
	}
	b.Touch(true)
	if !a.Mtime().Equal(t1) || a.LinkTarget() != "target-a" || a.ContentType() != "" || a.Xattrs() != nil || !a.Ctime().IsZero() {
		t.Errorf("changes to a copy showed in the original: mtime %v, target %q, type %q, xattrs %v, ctime %v",
			a.Mtime(), a.LinkTarget(), a.ContentType(), a.Xattrs(), a.Ctime())
	}
	if b.LinkTarget() != "target-b" || b.ContentType() != "text/csv" || string(b.Xattrs()["user.k"]) != "v" {
		t.Errorf("the copy lost its changes: target %q, type %q, xattrs %v", b.LinkTarget(), b.ContentType(), b.Xattrs())
	}
}

// FuzzSplitKey: SplitKey undoes ChildKey for every name a directory can
// hold, in the root and below.
func FuzzSplitKey(f *testing.F) {
	f.Add("", "a")
	f.Add("a/b", "c.txt")
	f.Add("x", "..x")
	f.Fuzz(func(t *testing.T, dirKey, name string) {
		if NameProblem(name) != "" || (dirKey != "" && (strings.HasPrefix(dirKey, "/") || strings.HasSuffix(dirKey, "/"))) {
			return
		}
		if d, n := SplitKey(ChildKey(dirKey, name)); d != dirKey || n != name {
			t.Errorf("SplitKey(ChildKey(%q, %q)) = %q, %q", dirKey, name, d, n)
		}
	})
}
