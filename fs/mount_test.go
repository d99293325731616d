package fs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"mount-ws/bucket"
	"mount-ws/fs"
	"mount-ws/internal/detdata"
	"mount-ws/internal/fusetest"
	"mount-ws/internal/wsstack"
)

// One embedded stack per test binary (one gateway per process).
var stack *wsstack.Stack

const token = "fs-test-token"

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fs-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	stack, err = wsstack.Start(context.Background(), wsstack.Config{DataDir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start stack:", err)
		os.Exit(1)
	}
	code := m.Run()
	stack.Close()
	os.RemoveAll(dir)
	os.Exit(code)
}

// workspace creates a fresh workspace named after the test and returns a
// bucket client with its credentials and a function writing raw objects
// into it with the root account.
func workspace(t *testing.T) (*bucket.Bucket, func(key string, data []byte)) {
	t.Helper()
	return workspaceWith(t, bucket.Config{})
}

// wsName is the name of t's workspace, made from the test's name.
func wsName(t *testing.T) string {
	ws := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	return strings.Trim(ws[:min(len(ws), 60)], "-")
}

// workspaceWith is workspace with a bucket client configured as cfg
// (location and credentials are filled in).
func workspaceWith(t *testing.T, cfg bucket.Config) (*bucket.Bucket, func(key string, data []byte)) {
	t.Helper()
	ws := wsName(t)
	if err := stack.AddWorkspace(context.Background(), wsstack.Workspace{Org: "fs", WS: ws, Tokens: []string{token}}); err != nil {
		t.Fatal(err)
	}
	c := mintCreds(t, "fs", ws)
	cfg.Bucket, cfg.Prefix, cfg.Endpoint, cfg.Region = c.Bucket, c.Prefix, c.Endpoint, c.Region
	cfg.Credentials = credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, c.SessionToken)
	b, err := bucket.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	put := func(key string, data []byte) {
		t.Helper()
		_, err := stack.RootClient().PutObject(context.Background(), &s3.PutObjectInput{
			Bucket: aws.String(c.Bucket), Key: aws.String(c.Prefix + key), Body: bytes.NewReader(data),
		})
		if err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
	}
	return b, put
}

func mintCreds(t *testing.T, org, ws string) wsstack.CredentialsResponse {
	t.Helper()
	req, _ := http.NewRequest("GET", stack.APIURL()+"/api/v1/org/"+org+"/ws/"+ws+"/storage/credentials", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var c wsstack.CredentialsResponse
	if resp.StatusCode != 200 {
		t.Fatalf("credentials: status %d", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
		t.Fatal(err)
	}
	return c
}

func deleteRaw(t *testing.T, b *bucket.Bucket, key string) {
	t.Helper()
	if err := b.Delete(context.Background(), key); err != nil {
		t.Fatal(err)
	}
}

func TestBrowseAndRead(t *testing.T) {
	b, put := workspace(t)
	put("a.csv", []byte("x,y\n1,2\n"))
	put("data/nested/deep/file.txt", []byte("deep"))
	put("data/nested/other.txt", []byte("other"))
	put("marker-only/", nil)
	put("empty.bin", nil)
	const bigSize = 20<<20 + 77
	big, _ := io.ReadAll(detdata.New(9, bigSize))
	put("data/big.bin", big)

	mnt := fusetest.Mount(t, fs.New(b, fs.Options{}))

	names := func(dir string) []string {
		t.Helper()
		ents, err := os.ReadDir(filepath.Join(mnt, dir))
		if err != nil {
			t.Fatalf("readdir %s: %v", dir, err)
		}
		var out []string
		for _, e := range ents {
			n := e.Name()
			if e.IsDir() {
				n += "/"
			}
			out = append(out, n)
		}
		return out
	}
	if got, want := strings.Join(names(""), " "), "a.csv data/ empty.bin marker-only/"; got != want {
		t.Errorf("root: %q, want %q", got, want)
	}
	if got, want := strings.Join(names("data"), " "), "big.bin nested/"; got != want {
		t.Errorf("data: %q, want %q", got, want)
	}
	if got := names("marker-only"); len(got) != 0 {
		t.Errorf("marker-only: %q, want empty", got)
	}

	fi, err := os.Stat(filepath.Join(mnt, "data/big.bin"))
	if err != nil || fi.Size() != bigSize || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o644 {
		t.Errorf("stat big.bin: %v %v", fi, err)
	}
	if fi, err := os.Stat(filepath.Join(mnt, "data/nested")); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o755 {
		t.Errorf("stat nested: %v %v", fi, err)
	}
	for path, want := range map[string]string{"a.csv": "x,y\n1,2\n", "data/nested/deep/file.txt": "deep", "empty.bin": ""} {
		got, err := os.ReadFile(filepath.Join(mnt, path))
		if err != nil || string(got) != want {
			t.Errorf("read %s: %q %v", path, got, err)
		}
	}
	f, err := os.Open(filepath.Join(mnt, "data/big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := detdata.Verify(f, 9, bigSize); err != nil {
		t.Errorf("sequential read: %v", err)
	}
	// Random reads (pread) see the right bytes too.
	for _, off := range []int64{bigSize - 10, 0, 5 << 20, 12345678, 1} {
		p := make([]byte, 4096)
		n, err := f.ReadAt(p, off)
		if (err != nil && err != io.EOF) || !bytes.Equal(p[:n], big[off:off+int64(n)]) {
			t.Errorf("pread at %d: n=%d err=%v", off, n, err)
		}
	}

	var walked []string
	filepath.WalkDir(mnt, func(p string, d iofs.DirEntry, err error) error {
		if err != nil {
			t.Errorf("walk %s: %v", p, err)
			return nil
		}
		rel, _ := filepath.Rel(mnt, p)
		walked = append(walked, rel)
		return nil
	})
	sort.Strings(walked)
	want := []string{".", "a.csv", "data", "data/big.bin", "data/nested", "data/nested/deep", "data/nested/deep/file.txt", "data/nested/other.txt", "empty.bin", "marker-only"}
	if strings.Join(walked, " ") != strings.Join(want, " ") {
		t.Errorf("walk:\n got %q\nwant %q", walked, want)
	}

	if _, err := os.Stat(filepath.Join(mnt, "nope.txt")); !errors.Is(err, iofs.ErrNotExist) {
		t.Errorf("stat missing: %v", err)
	}
}

func TestParallelReaders(t *testing.T) {
	b, put := workspace(t)
	const n, size = 8, 6 << 20
	for i := range n {
		data, _ := io.ReadAll(detdata.New(uint64(100+i), size))
		put(fmt.Sprintf("f%d.bin", i), data)
	}
	mnt := fusetest.Mount(t, fs.New(b, fs.Options{PrefetchMemory: 16 << 20}))
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := os.Open(filepath.Join(mnt, fmt.Sprintf("f%d.bin", i)))
			if err != nil {
				t.Error(err)
				return
			}
			defer f.Close()
			if err := detdata.Verify(f, uint64(100+i), size); err != nil {
				t.Errorf("f%d: %v", i, err)
			}
		}()
	}
	wg.Wait()
}

func TestOutsideChangesShowAfterTTL(t *testing.T) {
	b, put := workspace(t)
	put("keep.txt", []byte("v1"))
	put("listed/old.txt", []byte("old"))
	const ttl = 300 * time.Millisecond
	mnt := fusetest.Mount(t, fs.New(b, fs.Options{MetadataTTL: ttl, NegativeTTL: ttl}))
	path := func(p string) string { return filepath.Join(mnt, p) }
	names := func(dir string) string {
		ents, err := os.ReadDir(path(dir))
		if err != nil {
			t.Fatalf("readdir %s: %v", dir, err)
		}
		var l []string
		for _, e := range ents {
			l = append(l, e.Name())
		}
		return strings.Join(l, " ")
	}

	if _, err := os.Stat(path("new.txt")); !errors.Is(err, iofs.ErrNotExist) {
		t.Fatalf("new.txt before it exists: %v", err)
	}
	if got, _ := os.ReadFile(path("keep.txt")); string(got) != "v1" {
		t.Fatalf("keep.txt: %q", got)
	}
	// A listing, kept by the mount: it must not outlive the TTL either.
	// (Not of the root: a listing there would stand in for the lookups
	// of new.txt, and the negative entry would go untested.)
	if got := names("listed"); got != "old.txt" {
		t.Fatalf("listed/: %q, want old.txt", got)
	}
	put("listed/new.txt", []byte("fresh"))
	put("new.txt", []byte("fresh"))
	put("keep.txt", []byte("version two"))
	put("newdir/inner.txt", []byte("in"))
	time.Sleep(2 * ttl)

	if got, err := os.ReadFile(path("new.txt")); err != nil || string(got) != "fresh" {
		t.Errorf("new.txt after TTL: %q %v", got, err)
	}
	if got, err := os.ReadFile(path("keep.txt")); err != nil || string(got) != "version two" {
		t.Errorf("changed keep.txt after TTL: %q %v", got, err)
	}
	if got, err := os.ReadFile(path("newdir/inner.txt")); err != nil || string(got) != "in" {
		t.Errorf("new dir after TTL: %q %v", got, err)
	}
	if got := names("listed"); got != "new.txt old.txt" {
		t.Errorf("listed/ after TTL: %q, want new.txt old.txt", got)
	}
	deleteRaw(t, b, "new.txt")
	deleteRaw(t, b, "listed/new.txt")
	time.Sleep(2 * ttl)
	if got := names("listed"); got != "old.txt" {
		t.Errorf("listed/ after a deletion and the TTL: %q, want old.txt", got)
	}
	if _, err := os.Stat(path("new.txt")); !errors.Is(err, iofs.ErrNotExist) {
		t.Errorf("deleted new.txt after TTL: %v", err)
	}
	ents, _ := os.ReadDir(mnt)
	for _, e := range ents {
		if e.Name() == "new.txt" {
			t.Error("deleted new.txt still listed after TTL")
		}
	}
}

func TestReadOnlyRefusesModifications(t *testing.T) {
	b, put := workspace(t)
	put("f.txt", []byte("x"))
	mnt := fusetest.Mount(t, fs.New(b, fs.Options{ReadOnly: true, CacheDir: t.TempDir()}))
	ops := map[string]error{}
	_, ops["create"] = os.Create(filepath.Join(mnt, "new.txt"))
	_, ops["open for write"] = os.OpenFile(filepath.Join(mnt, "f.txt"), os.O_WRONLY, 0)
	ops["mkdir"] = os.Mkdir(filepath.Join(mnt, "d"), 0o755)
	ops["remove"] = os.Remove(filepath.Join(mnt, "f.txt"))
	ops["rename"] = os.Rename(filepath.Join(mnt, "f.txt"), filepath.Join(mnt, "g.txt"))
	ops["chmod"] = os.Chmod(filepath.Join(mnt, "f.txt"), 0o600)
	ops["truncate"] = os.Truncate(filepath.Join(mnt, "f.txt"), 0)
	ops["symlink"] = os.Symlink("f.txt", filepath.Join(mnt, "l"))
	for op, err := range ops {
		if !errors.Is(err, syscall.EROFS) {
			t.Errorf("%s: %v, want EROFS", op, err)
		}
	}
	if got, err := os.ReadFile(filepath.Join(mnt, "f.txt")); err != nil || string(got) != "x" {
		t.Errorf("f.txt after refused changes: %q %v", got, err)
	}
}

func TestReplacedWhileOpenIsStale(t *testing.T) {
	b, put := workspace(t)
	const size = 64 << 20
	data, _ := io.ReadAll(detdata.New(5, size))
	put("big.bin", data)
	mnt := fusetest.Mount(t, fs.New(b, fs.Options{}))
	f, err := os.Open(filepath.Join(mnt, "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := make([]byte, 4096)
	if _, err := f.ReadAt(p, 0); err != nil {
		t.Fatal(err)
	}
	put("big.bin", bytes.Repeat([]byte("n"), size)) // same size, new ETag
	// Far from what was read: a fresh ranged GET, which must not mix the
	// new version into the old one.
	_, err = f.ReadAt(p, size-1<<20)
	if !errors.Is(err, syscall.ESTALE) {
		t.Errorf("read of a replaced object: %v, want ESTALE", err)
	}
}
