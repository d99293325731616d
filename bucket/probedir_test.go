package bucket_test

import (
	"context"
	"testing"

	"mount-ws/bucket"
	"mount-ws/bucket/buckettest"
)

func TestProbeDir(t *testing.T) {
	b, put := buckettest.NewFake(t)
	put("full/a.txt", []byte("a"))
	put("deep/x/y/z.txt", []byte("z"))
	put("marker-only/", nil)
	put("marked/", nil)
	put("marked/a", []byte("a"))
	put("marked/!first", []byte("sorts before most names, after the marker"))
	put("fullness.txt", []byte("a sibling whose name starts like full/"))
	for dir, want := range map[string]bucket.DirProbe{
		"full/":        {Exists: true},
		"deep/":        {Exists: true},
		"deep/x/":      {Exists: true},
		"marker-only/": {Exists: true, Marker: true},
		"marked/":      {Exists: true, Marker: true},
		"empty/":       {},
		"ful/":         {},
		"full/a.txt/":  {},
	} {
		got, err := b.ProbeDir(context.Background(), dir)
		if err != nil || got != want {
			t.Errorf("ProbeDir(%q) = %+v, %v; want %+v", dir, got, err, want)
		}
	}
	if _, err := b.ProbeDir(context.Background(), "../"); err == nil {
		t.Error("ProbeDir accepted a directory outside the prefix")
	}
}
