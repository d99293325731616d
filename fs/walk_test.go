package fs_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"mount-ws/fs"
	"mount-ws/internal/fusetest"
	"mount-ws/internal/wsstack"
)

// Listing a directory and then its first subdirectory (a tree walk) lists
// the next subdirectories ahead, so the walk finds them listed already.
func TestWalkListsSubdirectoriesAhead(t *testing.T) {
	b, put := workspace(t)
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
