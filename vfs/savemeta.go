package vfs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"

	"mount-ws/bucket"
)

// MetaStore is what storing a file's metadata needs of the storage.
type MetaStore interface {
	Header
	// Copy copies src to dst on the server, with meta (nil: the same),
	// failing with bucket.ErrPrecondition if src's ETag is no longer
	// srcETag (unless that is empty).
	Copy(ctx context.Context, src, dst string, meta *bucket.Meta, srcETag string) (bucket.Object, error)
}

// ErrMetaReplaced: a change of metadata (chmod, touch, setfattr) was meant
// for a version of the object that another program replaced. It is an
// ESTALE, after which the kernel looks the name up and retries the
// operation once, on the version there now.
var ErrMetaReplaced = fmt.Errorf("the object was replaced by another program; the change of its mode, owner, times or attributes was meant for the version it replaced: %w", syscall.ESTALE)

// SaveMeta stores e's metadata on the object at key, the version e.ETag,
// with a copy of the object onto itself (S3 cannot change metadata in
// place), and returns the entry that now describes it.
//
// If the object is another version than e's, the copy is refused. When
// that version carries the metadata meant, it is this mount's own copy
// whose answer was lost, and it is the result. Otherwise another program
// replaced the object: its version and metadata stay, the change is
// dropped, and SaveMeta returns that version's entry with ErrMetaReplaced.
func SaveMeta(ctx context.Context, s MetaStore, key string, e Entry) (Entry, error) {
	md := ObjectMeta(e, key, false)
	o, err := s.Copy(ctx, key, key, &md, e.ETag)
	if errors.Is(err, bucket.ErrPrecondition) {
		o, err = s.Head(ctx, key)
		if err != nil {
			return Entry{}, fmt.Errorf("save metadata of %s after a conflict: %w", key, err)
		}
		if !sameMetadata(md.User, o.Metadata) {
			return EntryFromObject(o), fmt.Errorf("save metadata of %s: %w", key, ErrMetaReplaced)
		}
	}
	if err != nil {
		return Entry{}, err
	}
	saved := EntryFromObject(o)
	saved.SetLinkTarget(e.LinkTarget()) // the same bytes: the same target
	return saved, nil
}

// sameMetadata compares user metadata as S3 returns it: keys in lower case.
func sameMetadata(sent, got map[string]string) bool {
	if len(sent) != len(got) {
		return false
	}
	for k, v := range sent {
		if w, ok := got[strings.ToLower(k)]; !ok || w != v {
			return false
		}
	}
	return true
}
