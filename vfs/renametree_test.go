package vfs

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"mount-ws/bucket"
	"mount-ws/bucket/buckettest"
)

// failingCopies is a TreeStore whose copies of keys containing copyFails,
// and deletes of keys containing deleteFails, fail.
type failingCopies struct {
	*bucket.Bucket
	copyFails, deleteFails string
}

var errInjected = errors.New("injected failure")

func (f failingCopies) Copy(ctx context.Context, src, dst string, meta *bucket.Meta, srcETag string) (bucket.Object, error) {
	if f.copyFails != "" && strings.Contains(src, f.copyFails) {
		return bucket.Object{}, errInjected
	}
	return f.Bucket.Copy(ctx, src, dst, meta, srcETag)
}

func (f failingCopies) Delete(ctx context.Context, key string) error {
	if f.deleteFails != "" && strings.Contains(key, f.deleteFails) {
		return errInjected
	}
	return f.Bucket.Delete(ctx, key)
}

// TestRenameTree: a directory is renamed object by object, markers
// rewritten with their metadata, and the originals deleted only once
// every copy succeeded.
func TestRenameTree(t *testing.T) {
	tree := []string{"src/", "src/a.txt", "src/sub/", "src/sub/b.txt", "src/implicit/c.txt"}
	moved := []string{"dst/", "dst/a.txt", "dst/implicit/c.txt", "dst/sub/", "dst/sub/b.txt"}
	for _, tt := range []struct {
		name                   string
		copyFails, deleteFails string
		want                   []string // keys afterwards
		wantAllCopied          bool     // the RenameError says every copy was made
	}{
		{name: "all copied", want: moved},
		{name: "a copy fails", copyFails: "b.txt"}, // checked apart: see below
		{name: "a delete fails", deleteFails: "c.txt", want: append(slices.Clone(moved), "src/implicit/c.txt"), wantAllCopied: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b, _ := buckettest.NewFake(t)
			ctx := t.Context()
			for _, k := range tree {
				meta := bucket.Meta{User: map[string]string{MetaMode: "33188"}}
				if strings.HasSuffix(k, "/") {
					meta.User[MetaMode] = "16877" // 040755
				}
				if _, err := b.Put(ctx, k, bytes.NewReader([]byte(k)), int64(len(k)), meta); err != nil {
					t.Fatal(err)
				}
			}
			err := RenameTree(ctx, failingCopies{b, tt.copyFails, tt.deleteFails}, "src/", "dst/")
			var re *RenameError
			switch {
			case tt.copyFails == "" && tt.deleteFails == "":
				if err != nil {
					t.Fatalf("RenameTree: %v", err)
				}
			case !errors.As(err, &re) || !errors.Is(err, errInjected):
				t.Fatalf("RenameTree: %v, want a RenameError wrapping the injected failure", err)
			case re.AllCopied != tt.wantAllCopied || re.Objects != len(tree):
				t.Errorf("RenameError says copies made %v of %d objects, want %v of %d", re.AllCopied, re.Objects, tt.wantAllCopied, len(tree))
			}
			var got []string
			if err := b.ListRecursive(ctx, "", func(o bucket.Object) error { got = append(got, o.Key); return nil }); err != nil {
				t.Fatal(err)
			}
			slices.Sort(got)
			if tt.copyFails != "" {
				// Every original stays; the copies made before the
				// failure (they run in parallel: any of them) may stay
				// too, nothing else.
				for _, k := range got {
					if !slices.Contains(tree, k) && !slices.Contains(moved, k) {
						t.Errorf("key %s after a failed rename", k)
					}
				}
				for _, k := range tree {
					if !slices.Contains(got, k) {
						t.Errorf("%s is gone after a failed rename: %v", k, got)
					}
				}
				return
			}
			if want := slices.Sorted(slices.Values(tt.want)); !slices.Equal(got, want) {
				t.Errorf("keys after the rename:\n got %v\nwant %v", got, want)
			}
			for _, k := range []string{"dst/sub/", "dst/a.txt"} {
				o, err := b.Head(ctx, k)
				if err != nil {
					t.Fatal(err)
				}
				if want := map[string]string{"/": "16877", "t": "33188"}[k[len(k)-1:]]; o.Metadata[MetaMode] != want {
					t.Errorf("%s: mode metadata %q, want %q (the original's)", k, o.Metadata[MetaMode], want)
				}
			}
		})
	}
}
