package bucket_test

import (
	"context"
	"testing"

	"mount-ws/bucket/buckettest"
)

func TestHasChildren(t *testing.T) {
	b, put := buckettest.NewFake(t)
	put("full/a.txt", []byte("a"))
	put("deep/x/y/z.txt", []byte("z"))
	put("marker-only/", nil)
	put("fullness.txt", []byte("a sibling whose name starts like full/"))
	for dir, want := range map[string]bool{
		"full/": true, "deep/": true, "deep/x/": true, "marker-only/": true,
		"empty/": false, "ful/": false, "full/a.txt/": false,
	} {
		got, err := b.HasChildren(context.Background(), dir)
		if err != nil || got != want {
			t.Errorf("HasChildren(%q) = %v, %v; want %v", dir, got, err, want)
		}
	}
	if _, err := b.HasChildren(context.Background(), "../"); err == nil {
		t.Error("HasChildren accepted a directory outside the prefix")
	}
}
