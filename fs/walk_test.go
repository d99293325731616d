package fs_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mount-ws/bucket"
	"mount-ws/fs"
	"mount-ws/internal/fusetest"
	"mount-ws/internal/wsstack"
)

// Listing a directory and then its first subdirectory (a tree walk) lists
// the next subdirectories ahead, so the walk finds them listed already.
func TestWalkListsSubdirectoriesAhead(t *testing.T) {
	// Pages of one key: the lookup of tree must not read the
	// subdirectories whole (see TestLookupPageSeedsListings).
	b, put := workspaceWith(t, bucket.Config{ListMaxKeys: 1})
	for i := range 12 {
		put(fmt.Sprintf("tree/d%02d/f.txt", i), []byte("x"))
	}
	mnt := fusetest.Mount(t, fs.New(b, fs.Options{}))
	tree := filepath.Join(mnt, "tree")
	if _, err := os.ReadDir(tree); err != nil {
		t.Fatal(err)
	}
	stack.S3.ResetCounts()
	if _, err := os.ReadDir(filepath.Join(tree, "d00")); err != nil {
		t.Fatal(err)
	}
	// d00 itself, then the next four (as many as run at once) in the
	// background. (That no more follow is not checked here: it would take
	// a sleep. The count below shows that none is listed twice.)
	deadline := time.Now().Add(30 * time.Second)
	for stack.S3.Counts()[wsstack.OpList] < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("after listing d00: %d LISTs within 30 s, want 5 (d00 and the 4 after it)", stack.S3.Counts()[wsstack.OpList])
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i := 1; i < 12; i++ {
		ents, err := os.ReadDir(filepath.Join(tree, fmt.Sprintf("d%02d", i)))
		if err != nil || len(ents) != 1 || ents[0].Name() != "f.txt" {
			t.Fatalf("d%02d: %v %v", i, ents, err)
		}
	}
	// Listed ahead or not, each directory was listed once.
	if n := stack.S3.Counts()[wsstack.OpList]; n != 12 {
		t.Errorf("walking d00 to d11 sent %d LISTs, want 12", n)
	}
}

// TestSlowListingAnswersWhatFollows: a listing that takes longer than the
// metadata TTL (a huge directory; here 6 pages held 500 ms each against
// a 2 s TTL) stays fresh from its last page (and as long as it took), so
// ls -l of the directory costs its LISTs and nothing per entry.
func TestSlowListingAnswersWhatFollows(t *testing.T) {
	const n = 60
	b := pagedDir(t, "big", n)
	mnt := fusetest.Mount(t, fs.New(b, fs.Options{MetadataTTL: 2 * time.Second, MetadataHeadLimit: 10}))
	// Requests for one entry (a HEAD of big/fNN, a LIST of big/fNN/) are
	// counted; listings of the workspace are held.
	var perEntry atomic.Int64
	stack.S3.Inject(wsstack.S3Fault{KeyContains: "testslowlistinganswerswhatfollows/big/f", Matched: func(wsstack.Op, string) { perEntry.Add(1) }})
	stack.S3.Inject(wsstack.S3Fault{Ops: []wsstack.Op{wsstack.OpList}, KeyContains: "testslowlistinganswerswhatfollows", Stall: 500 * time.Millisecond})
	t.Cleanup(stack.S3.ClearFaults)
	dir := filepath.Join(mnt, "big")
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}
	stack.S3.ResetCounts()
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) != n {
		t.Fatalf("readdir: %d entries, %v", len(ents), err)
	}
	for _, e := range ents {
		if _, err := os.Lstat(filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	// The lookup of big itself may be asked again once its entry expires
	// in the kernel: a request per TTL, not per entry.
	if got := perEntry.Load(); got != 0 {
		t.Errorf("ls -l of a %d-entry directory listed more slowly than the TTL sent %d requests for single entries (all requests: %v), want none", n, got, stack.S3.Counts())
	}
}

// TestCloseWaitsForListingsAhead: Close cancels the listings a walk started
// ahead (here held by the server, as a stuck one would be) and returns
// once their goroutines have ended.
func TestCloseWaitsForListingsAhead(t *testing.T) {
	// Pages of one key, so that the listings ahead ask the server (see
	// TestWalkListsSubdirectoriesAhead).
	b, put := workspaceWith(t, bucket.Config{ListMaxKeys: 1})
	for i := range 6 {
		put(fmt.Sprintf("tree/d%02d/f.txt", i), []byte("x"))
	}
	f := fs.New(b, fs.Options{})
	mnt := fusetest.Mount(t, f)
	tree := filepath.Join(mnt, "tree")
	if _, err := os.ReadDir(tree); err != nil {
		t.Fatal(err)
	}
	hold := make(chan struct{})
	t.Cleanup(func() { close(hold) })
	var held atomic.Int64
	for i := 1; i < 6; i++ {
		remove := stack.S3.Inject(wsstack.S3Fault{Ops: []wsstack.Op{wsstack.OpList}, KeyContains: fmt.Sprintf("testclosewaitsforlistingsahead/tree/d%02d/", i),
			Hold: hold, Matched: func(wsstack.Op, string) { held.Add(1) }})
		t.Cleanup(remove)
	}
	if _, err := os.ReadDir(filepath.Join(tree, "d00")); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); held.Load() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no listing ahead reached the server within 30 s, so this test checks nothing")
		}
	}
	closed := make(chan int)
	go func() { closed <- f.Close(context.Background()) }()
	select {
	case <-closed:
	case <-time.After(time.Minute):
		t.Fatal("Close did not return within a minute of a listing ahead held by the server")
	}
	buf := make([]byte, 1<<20)
	if stacks := string(buf[:runtime.Stack(buf, true)]); strings.Contains(stacks, "listSiblingsAhead") {
		t.Errorf("a listing ahead is still running after Close returned:\n%s", stacks)
	}
}

// TestListingLastsAsLongAsItTook: a listing that took longer than the TTL
// to read (a huge directory) answers lookups for as long as it took, not
// only for the TTL: ls -l of 200,000 entries lstats them for seconds
// after the last page, and must not send a request for each.
func TestListingLastsAsLongAsItTook(t *testing.T) {
	const n = 40
	b := pagedDir(t, "big", n)
	var ahead atomic.Int64 // the caches' clock, moved on by the test
	f := fs.New(b, fs.Options{MetadataTTL: time.Second, MetadataHeadLimit: 10,
		Clock: func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }})
	mnt := fusetest.Mount(t, f)
	var perEntry atomic.Int64
	t.Cleanup(stack.S3.Inject(wsstack.S3Fault{KeyContains: "testlistinglastsaslongasittook/big/f", Matched: func(wsstack.Op, string) { perEntry.Add(1) }}))
	// 4 pages held 1 s each: the listing takes 4 s, the TTL is 1 s. Only
	// the listing is held: the lookups of big that follow must not be.
	unstall := stack.S3.Inject(wsstack.S3Fault{Ops: []wsstack.Op{wsstack.OpList}, KeyContains: "testlistinglastsaslongasittook/big/", Stall: time.Second})
	t.Cleanup(unstall)
	dir := filepath.Join(mnt, "big")
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != n {
		t.Fatalf("readdir: %d entries, %v", len(ents), err)
	}
	unstall()
	lstatAll := func(after time.Duration) int64 {
		ahead.Store(int64(after))
		forgetDentries(t, f, "big", func() bool { return true })
		perEntry.Store(0)
		for i := range n {
			if _, err := os.Lstat(filepath.Join(dir, fmt.Sprintf("f%02d", i))); err != nil {
				t.Fatal(err)
			}
		}
		return perEntry.Load()
	}
	if got := lstatAll(1500 * time.Millisecond); got != 0 {
		t.Errorf("lstat of every entry 1.5 s after a listing that took 4 s (TTL 1 s) sent %d requests for single entries, want none", got)
	}
	if got := lstatAll(10 * time.Second); got == 0 {
		t.Error("lstat of every entry 10 s after the listing sent no request: the listing never expired, so the check above proves nothing")
	}
}

// Lookups that wait for a directory's listing are answered from the page
// that holds their name: a program opening many files of a directory at
// once does not wait for the last page (with a held second page here,
// forever).
func TestLookupsAnsweredPageByPage(t *testing.T) {
	b := pagedDir(t, "pages", 40)
	mnt := fusetest.Mount(t, fs.New(b, fs.Options{}))
	dir := filepath.Join(mnt, "pages")
	// Lookups one by one until the next one lists the directory instead.
	for i := range 7 {
		if _, err := os.Stat(filepath.Join(dir, fmt.Sprintf("f%02d", 30+i))); err != nil {
			t.Fatal(err)
		}
	}
	// The listing's first page passes, the next ones are held.
	const listed = "testlookupsansweredpagebypage/pages/"
	hold := make(chan struct{})
	release := sync.OnceFunc(func() { close(hold) })
	t.Cleanup(release)
	listing := make(chan struct{})
	t.Cleanup(stack.S3.Inject(wsstack.S3Fault{Ops: []wsstack.Op{wsstack.OpList}, KeyContains: listed, Times: 1,
		Matched: func(wsstack.Op, string) { close(listing) }}))
	t.Cleanup(stack.S3.Inject(wsstack.S3Fault{Ops: []wsstack.Op{wsstack.OpList}, KeyContains: listed, Hold: hold}))
	// The lookup that lists the directory answers once the listing is
	// complete; the ones that come while it is read are the point here.
	lister := make(chan error, 1)
	go func() {
		_, err := os.Stat(filepath.Join(dir, "f00"))
		lister <- err
	}()
	select {
	case <-listing:
	case <-time.After(time.Minute):
		t.Fatal("the 8th lookup did not list the directory")
	}
	answered := make(chan error, 1)
	go func() {
		for i := 1; i <= 8; i++ { // f01 to f08, on the first page (f00 to f09)
			if _, err := os.Stat(filepath.Join(dir, fmt.Sprintf("f%02d", i))); err != nil {
				answered <- err
				return
			}
		}
		answered <- nil
	}()
	select {
	case err := <-answered:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("lookups of names on the listing's first page waited for the held second page")
	}
	release()
	if err := <-lister; err != nil {
		t.Fatal(err)
	}
}

// pagedDir returns a workspace whose directory dir holds n one-byte files,
// f00, f01, …, listed 10 to a page.
func pagedDir(t *testing.T, dir string, n int) *bucket.Bucket {
	t.Helper()
	b, put := workspaceWith(t, bucket.Config{ListMaxKeys: 10})
	for i := range n {
		put(fmt.Sprintf("%s/f%02d", dir, i), []byte("x"))
	}
	return b
}
