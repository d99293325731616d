package vfs

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// abortLog records the uploads it is asked to abort; those in fail fail.
type abortLog struct {
	aborted []string
	fail    map[string]bool
}

func (a *abortLog) AbortUpload(_ context.Context, key, uploadID string) error {
	if a.fail[uploadID] {
		return errors.New("refused")
	}
	a.aborted = append(a.aborted, key+" "+uploadID)
	return nil
}

func TestJournal(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "uploads")
	j := NewJournal(dir, slog.New(slog.DiscardHandler))
	j.Add("a.bin", "id-a")
	forget := j.Add("b.bin", "id-b")
	j.Add("c.bin", "id-c")
	forget() // b.bin completed: nothing to abort
	if err := os.WriteFile(filepath.Join(dir, "torn.json"), []byte(`{"key":`), 0o600); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("journal dir: %v %v, want mode 0700", fi, err)
	}

	// A crash, then the next mount: c.bin's abort fails and stays for the
	// mount after; the torn record is dropped.
	a := &abortLog{fail: map[string]bool{"id-c": true}}
	n, err := NewJournal(dir, slog.New(slog.DiscardHandler)).Recover(context.Background(), a)
	if n != 1 || err == nil || len(a.aborted) != 1 || a.aborted[0] != "a.bin id-a" {
		t.Fatalf("first recovery: %d aborted (%v), err %v; want a.bin's upload aborted and c.bin's error", n, a.aborted, err)
	}
	a = &abortLog{}
	n, err = NewJournal(dir, slog.New(slog.DiscardHandler)).Recover(context.Background(), a)
	if n != 1 || err != nil || len(a.aborted) != 1 || a.aborted[0] != "c.bin id-c" {
		t.Fatalf("second recovery: %d aborted (%v), err %v; want c.bin's upload only", n, a.aborted, err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) != 0 {
		t.Errorf("records left after every abort succeeded: %v", left)
	}

	// Without a directory the journal records nothing and recovers nothing.
	none := NewJournal("", slog.New(slog.DiscardHandler))
	none.Add("x", "id-x")()
	if n, err := none.Recover(context.Background(), &abortLog{}); n != 0 || err != nil {
		t.Errorf("journal without a directory recovered %d, %v", n, err)
	}
}
