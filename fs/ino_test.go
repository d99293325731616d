package fs_test

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"mount-ws/fs"
	"mount-ws/internal/fusetest"
)

// A file keeps its inode number when the kernel forgets it and looks it
// up again (git, rsync and tar compare them; posixtest's rename checks
// failed when the kernel forgot the file at the wrong moment), also after
// a rename, and a name that a renamed file left gets another number while
// that file lives.
func TestInodeNumbersOutliveForgets(t *testing.T) {
	b, _ := workspace(t)
	f := fs.New(b, fs.Options{})
	mnt := fusetest.Mount(t, f)
	run := strconv.FormatInt(time.Now().UnixNano(), 36) // the workspace outlives a run (-count)
	a, moved := "a-"+run, "moved-"+run
	ino := func(name string) uint64 {
		t.Helper()
		var st syscall.Stat_t
		if err := syscall.Lstat(filepath.Join(mnt, name), &st); err != nil {
			t.Fatal(err)
		}
		return st.Ino
	}
	if err := os.WriteFile(filepath.Join(mnt, a), []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := ino(a)
	// Forgotten once the node's OnForget ran (it frees the number), which
	// follows its leaving go-fuse's tree.
	forgotten := func() func() bool {
		was := f.Stats().Forgotten
		return func() bool { return f.Stats().Forgotten > was }
	}
	forgetDentries(t, f, a, forgotten())
	if got := ino(a); got != before {
		t.Errorf("inode number after the kernel forgot the file: %d, want %d", got, before)
	}

	if err := os.Rename(filepath.Join(mnt, a), filepath.Join(mnt, moved)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mnt, a), []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	if ino(a) == ino(moved) {
		t.Errorf("a new file under a name another file was renamed from got that file's inode number %d", ino(a))
	}
	// The renamed file keeps its number when the kernel forgets it too.
	forgetDentries(t, f, moved, forgotten())
	if got := ino(moved); got != before {
		t.Errorf("inode number of the renamed file after the kernel forgot it: %d, want %d", got, before)
	}
}
