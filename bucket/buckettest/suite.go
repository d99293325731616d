// Package buckettest is the conformance suite every bucket implementation
// (the embedded gateway, the in-memory fake, real S3) must pass, and an
// in-memory fake S3 server for tests of the layers above.
package buckettest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"mount-ws/bucket"
	"mount-ws/internal/detdata"
)

// Run runs the conformance suite, its subtests in parallel. newConfig
// returns the Config of a Bucket on a prefix of its own, empty, that no
// other call returns; it is called from several goroutines at once. The
// suite adjusts some knobs (page size, copy threshold) before bucket.New.
func Run(t *testing.T, newConfig func(t *testing.T) bucket.Config) {
	s := &suite{newConfig: newConfig}
	tests := []struct {
		name string
		fn   func(*testing.T)
	}{
		{"PutGetHead", s.putGetHead},
		{"Peek", s.peek},
		{"GetRanges", s.getRanges},
		{"IfMatch", s.ifMatch},
		{"Missing", s.missing},
		{"Metadata", s.metadata},
		{"List", s.list},
		{"ListSmallPages", s.listSmallPages},
		{"ListOver1000", s.listOver1000},
		{"ListFrom", s.listFrom},
		{"Upload", s.upload},
		{"UploadFailureAborts", s.uploadFailureAborts},
		{"ConditionalWrite", s.conditionalWrite},
		{"Copy", s.copy},
		{"CopyMultipart", s.copyMultipart},
		{"Delete", s.delete},
		{"InvalidKeys", s.invalidKeys},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t)
		})
	}
}

type suite struct {
	newConfig func(t *testing.T) bucket.Config
}

// bucket builds a Bucket on a fresh prefix, after tune.
func (s *suite) bucket(t *testing.T, tune ...func(*bucket.Config)) *bucket.Bucket {
	t.Helper()
	cfg := s.newConfig(t)
	for _, f := range tune {
		f(&cfg)
	}
	b, err := bucket.New(cfg)
	if err != nil {
		t.Fatalf("bucket.New: %v", err)
	}
	return b
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func put(t *testing.T, b *bucket.Bucket, key string, data []byte, meta map[string]string) bucket.Object {
	t.Helper()
	obj, err := b.Put(ctxFor(t), key, bytes.NewReader(data), int64(len(data)), bucket.Meta{User: meta})
	if err != nil {
		t.Fatalf("put %q: %v", key, err)
	}
	return obj
}

func get(t *testing.T, b *bucket.Bucket, key string, off, n int64, ifMatch string) ([]byte, error) {
	t.Helper()
	rc, err := b.Get(ctxFor(t), key, off, n, ifMatch)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func (s *suite) putGetHead(t *testing.T) {
	b := s.bucket(t)
	data := []byte("hello, workspace\n")
	before := time.Now().Add(-2 * time.Second)
	obj := put(t, b, "dir/hello.txt", data, nil)
	if obj.Key != "dir/hello.txt" || obj.Size != int64(len(data)) || obj.ETag == "" {
		t.Errorf("put returned %+v", obj)
	}
	if obj.LastModified.Before(before) || obj.LastModified.After(time.Now().Add(2*time.Second)) {
		t.Errorf("put LastModified %v, not about now", obj.LastModified)
	}
	head, err := b.Head(ctxFor(t), "dir/hello.txt")
	if err != nil {
		t.Fatal(err)
	}
	if head.Key != obj.Key || head.Size != obj.Size || head.ETag != obj.ETag {
		t.Errorf("head %+v, put %+v", head, obj)
	}
	if head.LastModified.IsZero() {
		t.Error("head: zero LastModified")
	}
	got, err := get(t, b, "dir/hello.txt", 0, -1, "")
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("get: %q, %v", got, err)
	}
	objs, _, err := b.ListAll(ctxFor(t), "dir/")
	if err != nil || len(objs) != 1 || objs[0].ETag != obj.ETag || objs[0].Size != obj.Size {
		t.Errorf("list: %+v, %v; want the put object's ETag %s", objs, err, obj.ETag)
	}

	// Overwrite, and an empty object.
	obj2 := put(t, b, "dir/hello.txt", []byte("other"), nil)
	if obj2.ETag == obj.ETag {
		t.Error("overwrite kept the ETag")
	}
	if got, err := get(t, b, "dir/hello.txt", 0, -1, ""); err != nil || string(got) != "other" {
		t.Errorf("get after overwrite: %q, %v", got, err)
	}
	put(t, b, "empty", nil, nil)
	if head, err := b.Head(ctxFor(t), "empty"); err != nil || head.Size != 0 {
		t.Errorf("head of empty: %+v, %v", head, err)
	}
	for _, r := range [][2]int64{{0, -1}, {0, 10}, {5, -1}} {
		if got, err := get(t, b, "empty", r[0], r[1], ""); err != nil || len(got) != 0 {
			t.Errorf("get empty %v: %q, %v", r, got, err)
		}
	}
}

func (s *suite) getRanges(t *testing.T) {
	b := s.bucket(t)
	data := []byte("0123456789abcdefghij") // 20 bytes
	obj := put(t, b, "r.bin", data, nil)
	tests := []struct {
		name   string
		off, n int64
		want   string
	}{
		{"whole", 0, -1, string(data)},
		{"head", 0, 5, "01234"},
		{"middle", 7, 3, "789"},
		{"to end", 15, -1, "fghij"},
		{"exact end", 15, 5, "fghij"},
		{"past end", 15, 100, "fghij"},
		{"last byte", 19, 1, "j"},
		{"at end", 20, 10, ""},
		{"at end open", 20, -1, ""},
		{"beyond end", 1000, 10, ""},
		{"zero length", 3, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, etag := range []string{"", obj.ETag} {
				got, err := get(t, b, "r.bin", tt.off, tt.n, etag)
				if err != nil || string(got) != tt.want {
					t.Errorf("get(%d, %d, %q) = %q, %v; want %q", tt.off, tt.n, etag, got, err, tt.want)
				}
			}
		})
	}
	if _, err := b.Get(ctxFor(t), "r.bin", -1, 1, ""); !errors.Is(err, iofs.ErrInvalid) {
		t.Errorf("negative offset: %v, want fs.ErrInvalid", err)
	}
}

func (s *suite) ifMatch(t *testing.T) {
	b := s.bucket(t)
	old := put(t, b, "f", []byte("version one"), nil)
	if got, err := get(t, b, "f", 0, 7, old.ETag); err != nil || string(got) != "version" {
		t.Fatalf("get with matching ETag: %q, %v", got, err)
	}
	put(t, b, "f", []byte("version two"), nil)
	for _, etag := range []string{old.ETag, `"00000000000000000000000000000000"`} {
		_, err := get(t, b, "f", 0, 7, etag)
		if !errors.Is(err, bucket.ErrPrecondition) {
			t.Errorf("get with If-Match %s after overwrite: %v, want ErrPrecondition", etag, err)
		}
		if errors.Is(err, iofs.ErrNotExist) || errors.Is(err, iofs.ErrPermission) {
			t.Errorf("precondition error also matches another class: %v", err)
		}
	}
}

func (s *suite) missing(t *testing.T) {
	b := s.bucket(t)
	ctx := ctxFor(t)
	_, err := b.Head(ctx, "nope.txt")
	checkNotExist(t, "head", err)
	_, err = b.Get(ctx, "nope.txt", 0, -1, "")
	checkNotExist(t, "get", err)
	_, err = b.Get(ctx, "nope.txt", 10, 10, `"abc"`)
	if !errors.Is(err, iofs.ErrNotExist) && !errors.Is(err, bucket.ErrPrecondition) {
		t.Errorf("get missing with If-Match: %v, want fs.ErrNotExist or ErrPrecondition", err)
	}
	_, err = b.Copy(ctx, "nope.txt", "copy.txt", nil, "")
	checkNotExist(t, "copy", err)
	if err := b.Delete(ctx, "nope.txt"); err != nil {
		t.Errorf("delete missing: %v, want nil", err)
	}
	_, err = b.Head(ctx, "nope/")
	checkNotExist(t, "head of a directory marker", err)
}

func checkNotExist(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, iofs.ErrNotExist) {
		t.Errorf("%s of a missing object: %v, want fs.ErrNotExist", what, err)
		return
	}
	if !strings.Contains(err.Error(), "nope") {
		t.Errorf("%s: error %q does not name the key", what, err)
	}
}

func (s *suite) metadata(t *testing.T) {
	b := s.bucket(t)
	meta := map[string]string{"mode": "33188", "mtime": "1700000000", "uid": "1000", "gid": "1000", "Mixed-Case": "v"}
	put(t, b, "m", []byte("x"), meta)
	head, err := b.Head(ctxFor(t), "m")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"mode": "33188", "mtime": "1700000000", "uid": "1000", "gid": "1000", "mixed-case": "v"}
	if !maps.Equal(head.Metadata, want) {
		t.Errorf("metadata %v, want %v", head.Metadata, want)
	}
	put(t, b, "plain", []byte("x"), nil)
	if head, err := b.Head(ctxFor(t), "plain"); err != nil || len(head.Metadata) != 0 {
		t.Errorf("metadata of an object put without: %v, %v", head.Metadata, err)
	}
}

// peek: one GET answers as a HEAD does, with the first bytes of the
// object; all of a small one, the start of a larger one; an empty object
// and a missing one answer as HEAD does.
func (s *suite) peek(t *testing.T) {
	b := s.bucket(t)
	meta := map[string]string{"mode": "33188", "uid": "1000"}
	for _, tc := range []struct {
		name string
		size int
	}{{"small", 100}, {"exactly max", 1024}, {"larger", 5000}, {"empty", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			data := bytes.Repeat([]byte("0123456789"), 600)[:tc.size]
			put(t, b, "peek/"+tc.name, data, meta)
			head, err := b.Head(ctxFor(t), "peek/"+tc.name)
			if err != nil {
				t.Fatal(err)
			}
			o, got, err := b.Peek(ctxFor(t), "peek/"+tc.name, 1024)
			if err != nil {
				t.Fatal(err)
			}
			if o.Key != head.Key || o.Size != head.Size || o.ETag != head.ETag || !o.LastModified.Equal(head.LastModified) || !maps.Equal(o.Metadata, head.Metadata) {
				t.Errorf("peek %+v, head %+v", o, head)
			}
			if want := data[:min(tc.size, 1024)]; !bytes.Equal(got, want) {
				t.Errorf("peek: %d bytes, want the first %d", len(got), len(want))
			}
		})
	}
	if _, _, err := b.Peek(ctxFor(t), "peek/nope", 1024); !errors.Is(err, iofs.ErrNotExist) {
		t.Errorf("peek of a missing object: %v, want ErrNotExist", err)
	}
}

func (s *suite) list(t *testing.T) {
	b := s.bucket(t)
	ctx := ctxFor(t)
	for _, k := range []string{"a.txt", "dir/", "dir/x", "implicit/y", "implicit/sub/z", "empty/", "zz"} {
		data := []byte(k)
		if strings.HasSuffix(k, "/") {
			data = nil // markers are empty (the gateway refuses others)
		}
		put(t, b, k, data, nil)
	}
	tests := []struct {
		dir      string
		objects  []string
		prefixes []string
	}{
		{"", []string{"a.txt", "zz"}, []string{"dir/", "empty/", "implicit/"}},
		{"dir/", []string{"dir/", "dir/x"}, nil},
		{"implicit/", []string{"implicit/y"}, []string{"implicit/sub/"}},
		{"implicit/sub/", []string{"implicit/sub/z"}, nil},
		{"empty/", []string{"empty/"}, nil},
		{"nothing/", nil, nil},
	}
	for _, tt := range tests {
		objs, prefixes, err := b.ListAll(ctx, tt.dir)
		if err != nil {
			t.Errorf("list %q: %v", tt.dir, err)
			continue
		}
		if got := keys(objs); !slices.Equal(got, tt.objects) {
			t.Errorf("list %q: objects %q, want %q", tt.dir, got, tt.objects)
		}
		if !slices.Equal(prefixes, tt.prefixes) {
			t.Errorf("list %q: prefixes %q, want %q", tt.dir, prefixes, tt.prefixes)
		}
		for _, o := range objs {
			size := int64(len(o.Key))
			if strings.HasSuffix(o.Key, "/") {
				size = 0
			}
			if o.ETag == "" || o.LastModified.IsZero() || o.Size != size {
				t.Errorf("list %q: incomplete entry %+v", tt.dir, o)
			}
		}
	}
	p, err := b.List(ctx, "", "")
	if err != nil || p.Next != "" || len(p.Objects) != 2 || len(p.Prefixes) != 3 {
		t.Errorf("one page: %+v, %v", p, err)
	}

	var all []string
	if err := b.ListRecursive(ctx, "", func(o bucket.Object) error { all = append(all, o.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	want := []string{"a.txt", "dir/", "dir/x", "empty/", "implicit/sub/z", "implicit/y", "zz"}
	if !slices.Equal(all, want) {
		t.Errorf("recursive: %q, want %q", all, want)
	}
	all = nil
	if err := b.ListRecursive(ctx, "implicit/", func(o bucket.Object) error { all = append(all, o.Key); return nil }); err != nil || !slices.Equal(all, []string{"implicit/sub/z", "implicit/y"}) {
		t.Errorf("recursive implicit/: %q, %v", all, err)
	}
	// An implicit directory has no object of its own, and vanishes with
	// its last object.
	if _, err := b.Head(ctx, "implicit/"); !errors.Is(err, iofs.ErrNotExist) {
		t.Errorf("head of an implicit directory: %v, want fs.ErrNotExist", err)
	}
	for _, k := range []string{"implicit/y", "implicit/sub/z"} {
		if err := b.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if _, prefixes, err := b.ListAll(ctx, ""); err != nil || slices.Contains(prefixes, "implicit/") {
		t.Errorf("implicit directory still listed after its last object went: %q, %v", prefixes, err)
	}

	stop := errors.New("stop")
	n := 0
	err = b.ListRecursive(ctx, "", func(bucket.Object) error { n++; return stop })
	if err != stop || n != 1 {
		t.Errorf("recursive stopped by fn: %v after %d calls, want the fn's error after 1", err, n)
	}
}

func keys(objs []bucket.Object) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.Key)
	}
	return out
}

// putMany writes n small objects named by name(i), in parallel.
func putMany(t *testing.T, b *bucket.Bucket, n int, name func(i int) string) {
	t.Helper()
	g, ctx := errgroup.WithContext(ctxFor(t))
	g.SetLimit(16)
	for i := range n {
		g.Go(func() error {
			_, err := b.Put(ctx, name(i), strings.NewReader("x"), 1, bucket.Meta{})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
}

func (s *suite) listSmallPages(t *testing.T) {
	b := s.bucket(t, func(c *bucket.Config) { c.ListMaxKeys = 3 })
	putMany(t, b, 10, func(i int) string { return fmt.Sprintf("d/f%02d", i) })
	putMany(t, b, 4, func(i int) string { return fmt.Sprintf("d/sub%d/x", i) })
	var objs, prefixes []string
	pages := 0
	next := ""
	for {
		p, err := b.List(ctxFor(t), "d/", next)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if len(p.Objects)+len(p.Prefixes) > 3 {
			t.Errorf("page of %d entries, asked for 3", len(p.Objects)+len(p.Prefixes))
		}
		objs = append(objs, keys(p.Objects)...)
		prefixes = append(prefixes, p.Prefixes...)
		if p.Next == "" {
			break
		}
		next = p.Next
	}
	if pages < 4 || len(objs) != 10 || len(prefixes) != 4 {
		t.Errorf("%d pages, %d objects, %d prefixes; want at least 4 pages, 10 objects, 4 prefixes", pages, len(objs), len(prefixes))
	}
	var n int
	if err := b.ListRecursive(ctxFor(t), "d/", func(bucket.Object) error { n++; return nil }); err != nil || n != 14 {
		t.Errorf("recursive over pages: %d objects, %v; want 14", n, err)
	}
}

// listFrom: the keys that begin with a name, at any depth, in key order,
// and where a short page stops.
func (s *suite) listFrom(t *testing.T) {
	b := s.bucket(t, func(c *bucket.Config) { c.ListMaxKeys = 3 })
	for _, k := range []string{"ab-x", "ab.txt", "ab/c", "ab/d/e", "abc", "b"} {
		put(t, b, k, []byte(k), nil)
	}
	tests := []struct {
		from      string
		want      []string
		truncated bool
	}{
		{"ab", []string{"ab-x", "ab.txt", "ab/c"}, true},
		{"ab/", []string{"ab/c", "ab/d/e"}, false},
		{"ab/d", []string{"ab/d/e"}, false},
		{"abc", []string{"abc"}, false},
		{"nothing", nil, false},
	}
	for _, tt := range tests {
		p, err := b.ListFrom(ctxFor(t), tt.from, 1000)
		if err != nil {
			t.Fatalf("ListFrom(%q): %v", tt.from, err)
		}
		last := ""
		if len(tt.want) > 0 {
			last = tt.want[len(tt.want)-1]
		}
		if got := keys(p.Objects); !slices.Equal(got, tt.want) || p.Truncated != tt.truncated || p.Last != last {
			t.Errorf("ListFrom(%q) = %q, truncated %v, last %q; want %q, %v, %q", tt.from, got, p.Truncated, p.Last, tt.want, tt.truncated, last)
		}
	}
	if _, err := b.ListFrom(ctxFor(t), "../x", 1000); !errors.Is(err, bucket.ErrInvalidKey) {
		t.Errorf("ListFrom outside the prefix: %v, want ErrInvalidKey", err)
	}

	// ListAfter goes on with a directory's listing after a key a
	// ListFrom page stopped at, also one inside a subdirectory.
	for _, k := range []string{"d/a", "d/s/1", "d/s/2", "d/t/1", "d/z"} {
		put(t, b, k, []byte(k), nil)
	}
	for _, tt := range []struct {
		after, objs, prefixes string
	}{
		{"d/a", "[d/z]", "[d/s/ d/t/]"},
		// d/s/2 is still to come: S3 may or may not give d/s/ again
		// (the caller has it from the page that stopped in it).
		{"d/s/1", "[d/z]", "[d/t/]"},
		{"d/s/2", "[d/z]", "[d/t/]"},
		{"d/z", "[]", "[]"},
	} {
		var objs, prefixes []string
		p, err := b.ListAfter(ctxFor(t), "d/", tt.after)
		for err == nil {
			objs, prefixes = append(objs, keys(p.Objects)...), append(prefixes, p.Prefixes...)
			if p.Next == "" {
				break
			}
			p, err = b.List(ctxFor(t), "d/", p.Next)
		}
		if err != nil {
			t.Fatalf("ListAfter %q: %v", tt.after, err)
		}
		slices.Sort(prefixes)
		prefixes = slices.Compact(prefixes)
		if strings.HasPrefix(tt.after, "d/s/") {
			prefixes = slices.DeleteFunc(prefixes, func(p string) bool { return p == "d/s/" })
		}
		if fmt.Sprint(objs) != tt.objs || fmt.Sprint(prefixes) != tt.prefixes {
			t.Errorf("ListAfter(d/, %q) = %v %v, want %s %s", tt.after, objs, prefixes, tt.objs, tt.prefixes)
		}
	}
}

func (s *suite) listOver1000(t *testing.T) {
	b := s.bucket(t)
	const n = 1005
	putMany(t, b, n, func(i int) string { return fmt.Sprintf("many/%04d", i) })
	p, err := b.List(ctxFor(t), "many/", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Objects) != 1000 || p.Next == "" {
		t.Errorf("first page: %d objects, next %q; want 1000 and a token", len(p.Objects), p.Next)
	}
	objs, _, err := b.ListAll(ctxFor(t), "many/")
	if err != nil || len(objs) != n {
		t.Fatalf("list all: %d objects, %v; want %d", len(objs), err, n)
	}
	for i, o := range objs {
		if want := fmt.Sprintf("many/%04d", i); o.Key != want {
			t.Fatalf("object %d is %q, want %q", i, o.Key, want)
		}
	}
}

func (s *suite) upload(t *testing.T) {
	b := s.bucket(t)
	ctx := ctxFor(t)
	const partSize = 5 << 20
	size := int64(3*partSize + 12345)
	src := detdata.New(7, size)
	var ids []string
	var mu sync.Mutex
	opts := bucket.UploadOptions{PartSize: partSize, Concurrency: 3, OnCreate: func(id string) {
		mu.Lock()
		ids = append(ids, id)
		mu.Unlock()
	}}
	obj, err := b.Upload(ctx, "big/file.bin", src, size, bucket.Meta{User: map[string]string{"mode": "420"}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 || ids[0] == "" {
		t.Errorf("OnCreate called with %q, want one upload ID", ids)
	}
	if obj.Size != size || obj.ETag == "" || obj.Key != "big/file.bin" {
		t.Errorf("upload returned %+v", obj)
	}
	head, err := b.Head(ctx, "big/file.bin")
	if err != nil || head.Size != size || head.ETag != obj.ETag || head.Metadata["mode"] != "420" {
		t.Errorf("head after upload: %+v, %v (upload ETag %s)", head, err, obj.ETag)
	}
	rc, err := b.Get(ctx, "big/file.bin", 0, -1, obj.ETag)
	if err != nil {
		t.Fatal(err)
	}
	if err := detdata.Verify(rc, 7, size); err != nil {
		t.Errorf("uploaded bytes: %v", err)
	}
	rc.Close()
	// A range across a part boundary.
	got, err := get(t, b, "big/file.bin", partSize-10, 20, obj.ETag)
	want := make([]byte, 20)
	src.ReadAt(want, partSize-10)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("range across parts: %v", err)
	}

	// Below the part size: one PUT, no multipart upload.
	ids = nil
	small := detdata.New(8, 1000)
	if _, err := b.Upload(ctx, "small.bin", small, 1000, bucket.Meta{}, opts); err != nil {
		t.Fatal(err)
	}
	if len(ids) != 0 {
		t.Errorf("small upload created a multipart upload %q", ids)
	}
	rc, err = b.Get(ctx, "small.bin", 0, -1, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := detdata.Verify(rc, 8, 1000); err != nil {
		t.Errorf("small upload bytes: %v", err)
	}
	rc.Close()
}

// failingReaderAt fails every read at or after off.
type failingReaderAt struct {
	r   io.ReaderAt
	off int64
	err error
}

func (f failingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > f.off {
		return 0, f.err
	}
	return f.r.ReadAt(p, off)
}

func (s *suite) uploadFailureAborts(t *testing.T) {
	b := s.bucket(t)
	ctx := ctxFor(t)
	const partSize = 5 << 20
	size := int64(3 * partSize)
	boom := errors.New("disk on fire")
	var id string
	_, err := b.Upload(ctx, "fail.bin", failingReaderAt{detdata.New(1, size), 2 * partSize, boom}, size, bucket.Meta{},
		bucket.UploadOptions{PartSize: partSize, OnCreate: func(u string) { id = u }})
	if !errors.Is(err, boom) {
		t.Fatalf("upload with a failing source: %v, want the source's error", err)
	}
	if id == "" {
		t.Fatal("OnCreate not called")
	}
	_, err = b.Head(ctx, "fail.bin")
	checkNotExistKey(t, err)
	// Already aborted by Upload: aborting again succeeds.
	if err := b.AbortUpload(ctx, "fail.bin", id); err != nil {
		t.Errorf("abort of an aborted upload: %v", err)
	}

	// A cancelled context aborts too, and is reported as such.
	cctx, cancel := context.WithCancel(ctx)
	_, err = b.Upload(cctx, "cancel.bin", detdata.New(1, size), size, bucket.Meta{},
		bucket.UploadOptions{PartSize: partSize, OnCreate: func(string) { cancel() }})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled upload: %v, want context.Canceled", err)
	}
	_, err = b.Head(ctx, "cancel.bin")
	checkNotExistKey(t, err)
}

func checkNotExistKey(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, iofs.ErrNotExist) {
		t.Errorf("object after failed upload: %v, want fs.ErrNotExist", err)
	}
}

func (s *suite) conditionalWrite(t *testing.T) {
	b := s.bucket(t)
	ctx := ctxFor(t)
	const partSize = 5 << 20
	for _, size := range []int64{1000, 2*partSize + 1} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			key := fmt.Sprintf("cond-%d.bin", size)
			up := func(seed uint64, opts bucket.UploadOptions) (bucket.Object, error) {
				opts.PartSize = partSize
				return b.Upload(ctx, key, detdata.New(seed, size), size, bucket.Meta{}, opts)
			}
			_, err := up(1, bucket.UploadOptions{IfMatch: `"00000000000000000000000000000000"`})
			if !errors.Is(err, bucket.ErrPrecondition) && !errors.Is(err, iofs.ErrNotExist) {
				t.Errorf("If-Match on a missing object: %v, want ErrPrecondition or fs.ErrNotExist", err)
			}
			first, err := up(1, bucket.UploadOptions{IfNoneMatch: "*"})
			if err != nil {
				t.Fatalf("If-None-Match * on a new key: %v", err)
			}
			if _, err := up(2, bucket.UploadOptions{IfNoneMatch: "*"}); !errors.Is(err, bucket.ErrPrecondition) {
				t.Errorf("If-None-Match * over an object: %v, want ErrPrecondition", err)
			}
			if _, err := up(2, bucket.UploadOptions{IfMatch: `"00000000000000000000000000000000"`}); !errors.Is(err, bucket.ErrPrecondition) {
				t.Errorf("If-Match with another ETag: %v, want ErrPrecondition", err)
			}
			if head, err := b.Head(ctx, key); err != nil || head.ETag != first.ETag {
				t.Errorf("object changed by refused writes: %+v, %v", head, err)
			}
			second, err := up(3, bucket.UploadOptions{IfMatch: first.ETag})
			if err != nil {
				t.Fatalf("If-Match with the current ETag: %v", err)
			}
			rc, err := b.Get(ctx, key, 0, -1, second.ETag)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			if err := detdata.Verify(rc, 3, size); err != nil {
				t.Errorf("bytes after the conditional overwrite: %v", err)
			}
		})
	}
}

func (s *suite) copy(t *testing.T) {
	b := s.bucket(t)
	ctx := ctxFor(t)
	src := "odd name/ü+plus %pct&amp.txt"
	orig := put(t, b, src, []byte("copy me"), map[string]string{"mode": "420", "mtime": "1"})

	// Metadata copied.
	obj, err := b.Copy(ctx, src, "dst/kept.txt", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if obj.Key != "dst/kept.txt" || obj.Size != orig.Size || obj.ETag == "" {
		t.Errorf("copy returned %+v", obj)
	}
	head, err := b.Head(ctx, "dst/kept.txt")
	if err != nil || head.Metadata["mode"] != "420" || head.Metadata["mtime"] != "1" || head.ETag != obj.ETag {
		t.Errorf("copy with metadata kept: %+v, %v (copy ETag %s)", head, err, obj.ETag)
	}
	if got, err := get(t, b, "dst/kept.txt", 0, -1, ""); err != nil || string(got) != "copy me" {
		t.Errorf("copied bytes %q, %v", got, err)
	}

	// Metadata replaced.
	if _, err := b.Copy(ctx, src, "dst/replaced.txt", &bucket.Meta{User: map[string]string{"mode": "384"}}, ""); err != nil {
		t.Fatal(err)
	}
	head, err = b.Head(ctx, "dst/replaced.txt")
	if err != nil || !maps.Equal(head.Metadata, map[string]string{"mode": "384"}) {
		t.Errorf("copy with metadata replaced: %v, %v", head.Metadata, err)
	}

	// Onto itself with new metadata: how chmod and utimens change an object;
	// meant for another version of it, nothing is copied.
	if _, err := b.Copy(ctx, src, src, &bucket.Meta{User: map[string]string{"mode": "1"}}, `"0123456789abcdef0123456789abcdef"`); !errors.Is(err, bucket.ErrPrecondition) {
		t.Errorf("copy meant for another version: %v, want ErrPrecondition", err)
	}
	if _, err := b.Copy(ctx, src, src, &bucket.Meta{User: map[string]string{"mode": "493", "mtime": "2"}}, orig.ETag); err != nil {
		t.Fatal(err)
	}
	head, err = b.Head(ctx, src)
	if err != nil || !maps.Equal(head.Metadata, map[string]string{"mode": "493", "mtime": "2"}) {
		t.Errorf("copy onto itself: %v, %v", head.Metadata, err)
	}
	if got, err := get(t, b, src, 0, -1, ""); err != nil || string(got) != "copy me" {
		t.Errorf("bytes after copy onto itself %q, %v", got, err)
	}

	// Content-Type: written, kept by a copy that replaces the user
	// metadata, replaced when the copy names one.
	ctx2 := ctxFor(t)
	if _, err := b.Put(ctx2, "typed.csv", strings.NewReader("a,b\n"), 4, bucket.Meta{ContentType: "text/csv"}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		meta *bucket.Meta
		want string
	}{
		{&bucket.Meta{User: map[string]string{"mode": "384"}}, "text/csv"},
		{&bucket.Meta{User: map[string]string{"mode": "384"}, ContentType: "application/json"}, "application/json"},
	} {
		if _, err := b.Copy(ctx2, "typed.csv", "typed-copy", tt.meta, ""); err != nil {
			t.Fatal(err)
		}
		if head, err := b.Head(ctx2, "typed-copy"); err != nil || head.ContentType != tt.want {
			t.Errorf("copy with Content-Type %q: got %q, %v; want %q", tt.meta.ContentType, head.ContentType, err, tt.want)
		}
	}

	// Over an existing object.
	put(t, b, "dst/existing", []byte("old"), nil)
	if _, err := b.Copy(ctx, "dst/kept.txt", "dst/existing", nil, ""); err != nil {
		t.Fatal(err)
	}
	if got, err := get(t, b, "dst/existing", 0, -1, ""); err != nil || string(got) != "copy me" {
		t.Errorf("copy over an existing object: %q, %v", got, err)
	}
}

func (s *suite) copyMultipart(t *testing.T) {
	b := s.bucket(t, func(c *bucket.Config) {
		c.MultipartCopyThreshold = 1 << 20
		c.CopyPartSize = 5 << 20
	})
	ctx := ctxFor(t)
	size := int64(12<<20 + 777)
	if _, err := b.Upload(ctx, "src dir/big+1.bin", detdata.New(3, size), size, bucket.Meta{User: map[string]string{"mode": "420"}},
		bucket.UploadOptions{PartSize: 8 << 20}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		meta *bucket.Meta
		want map[string]string
	}{
		{"kept", nil, map[string]string{"mode": "420"}},
		{"replaced", &bucket.Meta{User: map[string]string{"mode": "384", "mtime": "5"}}, map[string]string{"mode": "384", "mtime": "5"}},
	} {
		dst := "dst/" + tt.name + ".bin"
		obj, err := b.Copy(ctx, "src dir/big+1.bin", dst, tt.meta, "")
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		head, err := b.Head(ctx, dst)
		if err != nil || head.Size != size || head.ETag != obj.ETag || !maps.Equal(head.Metadata, tt.want) {
			t.Errorf("%s: head %+v, %v; copy returned %+v", tt.name, head, err, obj)
		}
		rc, err := b.Get(ctx, dst, 0, -1, "")
		if err != nil {
			t.Fatal(err)
		}
		if err := detdata.Verify(rc, 3, size); err != nil {
			t.Errorf("%s: copied bytes: %v", tt.name, err)
		}
		rc.Close()
	}
}

func (s *suite) delete(t *testing.T) {
	b := s.bucket(t)
	ctx := ctxFor(t)
	put(t, b, "d/f", []byte("x"), nil)
	put(t, b, "d/", nil, nil)
	for _, k := range []string{"d/f", "d/f", "d/"} {
		if err := b.Delete(ctx, k); err != nil {
			t.Errorf("delete %q: %v", k, err)
		}
	}
	if _, err := b.Head(ctx, "d/f"); !errors.Is(err, iofs.ErrNotExist) {
		t.Errorf("head after delete: %v", err)
	}
	if objs, prefixes, err := b.ListAll(ctx, ""); err != nil || len(objs)+len(prefixes) != 0 {
		t.Errorf("list after deleting everything: %v %v %v", objs, prefixes, err)
	}
}

// BadKeys returns relative keys every method must refuse before any
// request.
func BadKeys() []string {
	return []string{
		"", "/", "/abs", "..", "../x", "a/../../x", "a/..", "a/../", ".", "./x", "a/./b", "a/.",
		"a//b", "//", "a//", "x\x00y", "\xff\xfe", strings.Repeat("k", 1025),
	}
}

// BadDirs returns directories List and friends must refuse.
func BadDirs() []string {
	return []string{"/", "a", "a/b", "../", "a/../", "./", "a//", "//", "/a/", "x\x00/"}
}

func (s *suite) invalidKeys(t *testing.T) {
	b := s.bucket(t)
	ctx := ctxFor(t)
	check := func(what, key string, err error) {
		t.Helper()
		if !errors.Is(err, bucket.ErrInvalidKey) || !errors.Is(err, iofs.ErrInvalid) {
			t.Errorf("%s %q: %v, want ErrInvalidKey", what, key, err)
		}
	}
	for _, k := range BadKeys() {
		_, err := b.Head(ctx, k)
		check("head", k, err)
		_, err = b.Get(ctx, k, 0, -1, "")
		check("get", k, err)
		_, err = b.Put(ctx, k, strings.NewReader("x"), 1, bucket.Meta{})
		check("put", k, err)
		_, err = b.Upload(ctx, k, strings.NewReader("x"), 1, bucket.Meta{}, bucket.UploadOptions{})
		check("upload", k, err)
		err = b.AbortUpload(ctx, k, "id")
		check("abort", k, err)
		_, err = b.Copy(ctx, k, "ok", nil, "")
		check("copy from", k, err)
		_, err = b.Copy(ctx, "ok", k, nil, "")
		check("copy to", k, err)
		err = b.Delete(ctx, k)
		check("delete", k, err)
	}
	for _, d := range BadDirs() {
		_, err := b.List(ctx, d, "")
		check("list", d, err)
		_, _, err = b.ListAll(ctx, d)
		check("list all", d, err)
		err = b.ListRecursive(ctx, d, func(bucket.Object) error { return nil })
		check("list recursive", d, err)
	}
}
