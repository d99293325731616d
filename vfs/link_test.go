package vfs

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"mount-ws/bucket"
	"mount-ws/bucket/buckettest"
)

// noGets is a Getter that must not be asked.
type noGets struct{ t *testing.T }

func (g noGets) Get(context.Context, string, int64, int64, string) (io.ReadCloser, error) {
	g.t.Error("a GET for a link target its lookup fetched already")
	return nil, errors.New("no GETs here")
}

// TestLinkTarget: a link's target comes from what its lookup fetched if
// that is the same version, else from the object, and only from the
// version the link's node stands for.
func TestLinkTarget(t *testing.T) {
	b, _ := buckettest.NewFake(t)
	ctx := t.Context()
	const target = "../data/current.csv"
	o, err := b.Put(ctx, "l", bytes.NewReader([]byte(target)), int64(len(target)), bucket.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	e := Entry{Size: o.Size, ETag: o.ETag}
	bodies := NewBodies(BodiesLimit, time.Minute, nil)
	bodies.Keep("l", o.ETag, []byte(target), true)
	if got, err := LinkTarget(ctx, noGets{t}, bodies, "l", e); err != nil || string(got) != target {
		t.Errorf("from what the lookup fetched: %q, %v; want %q", got, err, target)
	}
	if got, err := LinkTarget(ctx, b, nil, "l", e); err != nil || string(got) != target {
		t.Errorf("from the object: %q, %v; want %q", got, err, target)
	}
	if _, err := b.Put(ctx, "l", bytes.NewReader([]byte("another")), 7, bucket.Meta{}); err != nil {
		t.Fatal(err)
	}
	if got, err := LinkTarget(ctx, b, nil, "l", e); !errors.Is(err, bucket.ErrPrecondition) {
		t.Errorf("after the name got another object: %q, %v; want bucket.ErrPrecondition", got, err)
	}
}

// TestRenamedEntry: a rename gives a new ctime; a content type guessed
// from the old name follows the new one, one chosen elsewhere stays.
func TestRenamedEntry(t *testing.T) {
	old := time.Unix(1e9, 0)
	for _, tt := range []struct{ was, want string }{
		{TypeByName("a.csv"), TypeByName("b.json")},
		{"", TypeByName("b.json")},
		{"application/x-parquet", "application/x-parquet"},
	} {
		e := Entry{}
		e.SetCtime(old)
		e.SetContentType(tt.was)
		got := RenamedEntry(e, "a.csv", "b.json")
		if got.ContentType() != tt.want || !got.Ctime().After(old) {
			t.Errorf("content type %q renamed a.csv → b.json: %q, ctime %v; want %q, a new ctime", tt.was, got.ContentType(), got.Ctime(), tt.want)
		}
	}
}
