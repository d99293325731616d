package vfs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
)

// Journal records the multipart uploads in progress, one small file each,
// so that uploads a crashed mount-ws left incomplete can be aborted at the
// next mount: workspace credentials cannot list a bucket's uploads.
type Journal struct {
	dir string // "" disables the journal
	log *slog.Logger
}

// NewJournal returns the journal kept in dir ("": none), which logs to log.
func NewJournal(dir string, log *slog.Logger) *Journal {
	return &Journal{dir: dir, log: log}
}

// Aborter abandons an incomplete multipart upload; one that no longer
// exists counts as abandoned.
type Aborter interface {
	AbortUpload(ctx context.Context, key, uploadID string) error
}

type journalRecord struct {
	Key      string `json:"key"`
	UploadID string `json:"upload_id"`
}

// Add records an upload and returns the function that forgets it.
func (j *Journal) Add(key, uploadID string) (forget func()) {
	if j.dir == "" {
		return func() {}
	}
	sum := sha256.Sum256([]byte(key + "\x00" + uploadID))
	path := filepath.Join(j.dir, hex.EncodeToString(sum[:12])+".json")
	body, _ := json.Marshal(journalRecord{Key: key, UploadID: uploadID})
	err := os.MkdirAll(j.dir, 0o700)
	if err == nil {
		err = os.WriteFile(path, body, 0o600)
	}
	if err != nil {
		// The upload goes on; only its clean-up after a crash is at risk.
		j.log.Warn("could not record a multipart upload; a crash now would leave it incomplete in the bucket",
			slog.String("key", key), slog.Any("err", err))
	}
	return func() { os.Remove(path) }
}

// Recover aborts every recorded upload and forgets it. It returns how many
// it aborted; records it could not act on stay for the next mount.
func (j *Journal) Recover(ctx context.Context, b Aborter) (int, error) {
	if j.dir == "" {
		return 0, nil
	}
	paths, err := filepath.Glob(filepath.Join(j.dir, "*.json"))
	if err != nil {
		return 0, err
	}
	var errs []error
	n := 0
	for _, p := range paths {
		body, err := os.ReadFile(p)
		var r journalRecord
		if err != nil || json.Unmarshal(body, &r) != nil || r.Key == "" || r.UploadID == "" {
			os.Remove(p) // unreadable: nothing to act on
			continue
		}
		// An upload that no longer exists counts as aborted.
		if err := b.AbortUpload(ctx, r.Key, r.UploadID); err != nil {
			errs = append(errs, fmt.Errorf("abort upload of %s: %w", r.Key, err))
			continue
		}
		os.Remove(p)
		n++
	}
	return n, errors.Join(errs...)
}
