package vfs

import (
	"context"
	"fmt"
	"io"
)

// MaxLinkTarget is the longest link target read: Linux's PATH_MAX.
const MaxLinkTarget = 4096

// LinkTarget reads the target of the link at key, the version e: what
// its lookup fetched (Bodies, if not nil), else the object's bytes. Only
// that version will do: the name may hold another object by now (a
// rename race), and its bytes are no target of this link; the GET then
// fails with bucket.ErrPrecondition (or io/fs.ErrNotExist if the name
// holds nothing).
func LinkTarget(ctx context.Context, g Getter, bodies *Bodies, key string, e Entry) ([]byte, error) {
	if bodies != nil && e.Size > 0 && e.Size <= MaxLinkTarget {
		target := make([]byte, e.Size)
		if got, ok := bodies.Read(key, e.ETag, target, 0); ok && got == len(target) {
			return target, nil
		}
	}
	body, err := g.Get(ctx, key, 0, -1, e.ETag)
	if err != nil {
		return nil, fmt.Errorf("read link %s: %w", key, err)
	}
	defer body.Close()
	target, err := io.ReadAll(io.LimitReader(body, MaxLinkTarget))
	if err != nil {
		return nil, fmt.Errorf("read link %s: %w", key, err)
	}
	return target, nil
}

// RenamedEntry is what e, the entry of a file at src, says once the file
// is renamed to dst: a new ctime, and a content type that came from the
// old name's extension follows the new name (as on s3fs); one another
// program chose stays.
func RenamedEntry(e Entry, src, dst string) Entry {
	e.Touch(false)
	if ct := e.ContentType(); ct == "" || ct == TypeByName(src) {
		e.SetContentType(TypeByName(dst))
	}
	return e
}
