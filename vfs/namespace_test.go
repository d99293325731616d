package vfs

import (
	"bytes"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"mount-ws/bucket"
)

// The namespace's changes without a mount: what each leaves in the
// bucket and in the directory's listing.

// newNamespace returns a namespace on an in-memory S3, and the cache of
// the directory dirKey, holding a listing that every change must show.
func newNamespace(t *testing.T, dirKey string) (*filesEnv, *Namespace, *DirCache) {
	e := newFilesEnv(t)
	ns := NewNamespace(e.store, e.files)
	c := e.files.dirs.Hold(dirKey)
	t.Cleanup(func() { e.files.dirs.Release(c) })
	c.InstallEmpty()
	return e, ns, c
}

func TestNamespace(t *testing.T) {
	e, ns, parent := newNamespace(t, "d")
	ctx := t.Context()
	shows := func(name string) (Entry, bool) {
		t.Helper()
		got, known, found := parent.Lookup(name, time.Minute, time.Minute)
		if !known {
			t.Fatalf("the listing of d does not know %s", name)
		}
		return got, found
	}
	entry := func(mode uint32) Entry {
		return Entry{Meta: true, Stored: Stored{Mode: mode, Owner: true, UID: 1000, GID: 1000}}
	}

	if _, err := ns.MakeDir(ctx, "d/sub", entry(syscall.S_IFDIR|0o750)); err != nil {
		t.Fatal(err)
	}
	if got, found := shows("sub"); !found || !got.Dir {
		t.Fatalf("listing after mkdir: %+v %v, want a directory", got, found)
	}
	if m, err := ns.DirMeta(ctx, "d/sub"); err != nil || m.Mode&0o7777 != 0o750 || m.UID != 1000 {
		t.Fatalf("marker of d/sub: %+v %v, want mode 0750 owned by 1000", m, err)
	}
	if _, err := ns.MakeLink(ctx, "d/sub/link", "../target", entry(syscall.S_IFLNK|0o777)); err != nil {
		t.Fatal(err)
	}
	if body, _ := e.body(t, "d/sub/link"); body != "../target" {
		t.Fatalf("link object holds %q", body)
	}
	if err := ns.RemoveDir(ctx, "d/sub", nil); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("rmdir of a directory holding a link: %v, want ErrNotEmpty", err)
	}
	if err := ns.Remove(ctx, "d/sub/link", nil); err != nil {
		t.Fatal(err)
	}
	// A file being written in it, not saved yet, keeps it too.
	f, _ := e.create(t, "d/sub/new.txt", "unsaved")
	if err := ns.RemoveDir(ctx, "d/sub", []*File{f}); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("rmdir of a directory with a file being written: %v, want ErrNotEmpty", err)
	}
	if err := ns.RemoveDir(ctx, "d/sub", nil); err != nil {
		t.Fatal(err)
	}
	if _, found := shows("sub"); found {
		t.Fatal("the listing still shows the removed directory")
	}

	fifo, err := ns.MakeNode(ctx, "d/fifo", entry(syscall.S_IFIFO|0o644))
	if err != nil {
		t.Fatal(err)
	}
	if got, found := shows("fifo"); !found || got.Kind() != syscall.S_IFIFO || got.ETag != fifo.ETag {
		t.Fatalf("listing after mknod: %+v %v", got, found)
	}
	// The directory d has no marker: removing its last child makes it
	// vanish, as it has in S3.
	if ns.Vanished(ctx, "d", parent) {
		t.Fatal("d vanished while it holds fifo")
	}
	if err := ns.Remove(ctx, "d/fifo", nil); err != nil {
		t.Fatal(err)
	}
	if _, found := shows("fifo"); found {
		t.Fatal("the listing still shows the removed file")
	}
	// Another program's object, which the listing does not show, keeps it.
	if _, err := e.store.Put(ctx, "d/other", bytes.NewReader(nil), 0, bucket.Meta{}); err != nil {
		t.Fatal(err)
	}
	if ns.Vanished(ctx, "d", parent) {
		t.Fatal("d vanished while S3 holds d/other")
	}
	if err := e.store.Delete(ctx, "d/other"); err != nil {
		t.Fatal(err)
	}
	if !ns.Vanished(ctx, "d", parent) {
		t.Fatal("d did not vanish with its last child")
	}
}

// TestNamespaceSaveDirMeta: a directory's new mode is on its marker and
// in its parent's listing.
func TestNamespaceSaveDirMeta(t *testing.T) {
	_, ns, root := newNamespace(t, "")
	ctx := t.Context()
	d, err := ns.MakeDir(ctx, "d", Entry{Meta: true, Stored: Stored{Mode: syscall.S_IFDIR | 0o755}})
	if err != nil {
		t.Fatal(err)
	}
	d.Mode = syscall.S_IFDIR | 0o700
	if _, err := ns.SaveDirMeta(ctx, "d", d); err != nil {
		t.Fatal(err)
	}
	if m, err := ns.DirMeta(ctx, "d"); err != nil || m.Mode&0o7777 != 0o700 {
		t.Fatalf("marker: %+v %v, want mode 0700", m, err)
	}
	if got, _, found := root.Lookup("d", time.Minute, time.Minute); !found || got.Mode&0o7777 != 0o700 {
		t.Fatalf("root's listing: %+v %v, want mode 0700", got, found)
	}
}

// TestNamespaceRename: what rename(2) refuses, what a file's and a
// directory's renames leave, and a file's rename whose delete fails.
func TestNamespaceRename(t *testing.T) {
	ctx := t.Context()
	setup := func(t *testing.T) (*filesEnv, *Namespace) {
		e, ns, _ := newNamespace(t, "")
		for _, k := range []string{"a.txt", "b.txt", "d/", "d/x.txt", "empty/"} {
			if _, err := e.store.Put(ctx, k, strings.NewReader(k), int64(len(k)), bucket.Meta{}); err != nil {
				t.Fatal(err)
			}
		}
		return e, ns
	}
	file, dir := Entry{Size: 5}, Entry{Dir: true}
	for _, tt := range []struct {
		name    string
		r       Renaming
		want    error
		objects map[string]string // afterwards; "" for none
	}{
		{"noreplace", Renaming{From: "a.txt", To: "b.txt", Source: file, Target: &file, NoReplace: true}, ErrExists, map[string]string{"a.txt": "a.txt", "b.txt": "b.txt"}},
		{"dir over file", Renaming{From: "d", To: "a.txt", Source: dir, Target: &file}, ErrNotDir, map[string]string{"d/x.txt": "d/x.txt"}},
		{"file over dir", Renaming{From: "a.txt", To: "d", Source: file, Target: &dir}, ErrIsDir, map[string]string{"a.txt": "a.txt"}},
		{"dir over non-empty dir", Renaming{From: "empty", To: "d", Source: dir, Target: &dir}, ErrNotEmpty, map[string]string{"d/x.txt": "d/x.txt"}},
		{"file over file", Renaming{From: "a.txt", To: "b.txt", Source: file, Target: &file}, nil, map[string]string{"a.txt": "", "b.txt": "a.txt"}},
		{"dir", Renaming{From: "d", To: "e", Source: dir}, nil, map[string]string{"d/x.txt": "", "e/x.txt": "d/x.txt"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e, ns := setup(t)
			_, _, err := ns.Rename(ctx, tt.r)
			if !errors.Is(err, tt.want) {
				t.Fatalf("rename: %v, want %v", err, tt.want)
			}
			for k, want := range tt.objects {
				got, ok := e.body(t, k)
				if want == "" && ok || want != "" && got != want {
					t.Errorf("%s holds %q (%v), want %q", k, got, ok, want)
				}
			}
		})
	}
	t.Run("delete fails after the copy", func(t *testing.T) {
		e, ns := setup(t)
		e.store.noDelete = "a.txt"
		target := e.files.NewFile(&testNode{key: "b.txt", inTree: true}, file)
		moved, replaced, err := ns.Rename(ctx, Renaming{From: "a.txt", To: "b.txt", Source: file, Target: &file, TargetFile: target})
		if err == nil || !replaced {
			t.Fatalf("rename: replaced %v, %v; want an error and the target replaced", replaced, err)
		}
		if got, _ := e.body(t, "b.txt"); got != "a.txt" || moved.Size != 5 {
			t.Fatalf("b.txt holds %q (entry size %d), want the copy of a.txt", got, moved.Size)
		}
		if _, gone := target.Unlinked(); !gone || !target.Replaced() {
			t.Fatal("the file b.txt held is not marked replaced")
		}
	})
}

// TestNamespaceRenameDirWithWriter: a file still open for writing in a
// renamed directory, closed before the adapter moved its node, is saved
// under the new name, not the old one (which would bring it back).
func TestNamespaceRenameDirWithWriter(t *testing.T) {
	e, ns, _ := newNamespace(t, "")
	ctx := t.Context()
	if _, err := ns.MakeDir(ctx, "d", Entry{Meta: true, Stored: Stored{Mode: syscall.S_IFDIR | 0o755}}); err != nil {
		t.Fatal(err)
	}
	f, _ := e.create(t, "d/a.txt", "written") // its node stays at d/a.txt
	r := Renaming{From: "d", To: "e", Source: Entry{Dir: true}, SourceTree: []*File{f}}
	if _, _, err := ns.Rename(ctx, r); err != nil {
		t.Fatal(err)
	}
	if err := e.close(t, f); err != nil {
		t.Fatal(err)
	}
	if body, _ := e.body(t, "e/a.txt"); body != "written" {
		t.Fatalf("e/a.txt holds %q, want written", body)
	}
	if _, ok := e.body(t, "d/a.txt"); ok {
		t.Fatal("the close saved under the old name")
	}
	e.release(f)
	if got := unsavedKeys(e.files); len(got) != 0 {
		t.Fatalf("unsaved %v after the close, want none", got)
	}
}
