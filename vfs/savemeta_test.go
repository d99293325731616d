package vfs

import (
	"bytes"
	"errors"
	"testing"

	"mount-ws/bucket"
	"mount-ws/bucket/buckettest"
)

// TestSaveMeta: a change of metadata is a copy of the object onto itself
// on the version the change was meant for; another version there means
// either this mount's own copy whose answer was lost (same metadata: done)
// or another program's (its version stays, ErrMetaReplaced).
func TestSaveMeta(t *testing.T) {
	b, _ := buckettest.NewFake(t)
	ctx := t.Context()
	put := func(key, body string, meta map[string]string) Entry {
		t.Helper()
		if _, err := b.Put(ctx, key, bytes.NewReader([]byte(body)), int64(len(body)), bucket.Meta{User: meta}); err != nil {
			t.Fatal(err)
		}
		o, err := b.Head(ctx, key) // with its metadata
		if err != nil {
			t.Fatal(err)
		}
		return EntryFromObject(o)
	}
	chmod := func(e Entry) Entry {
		e.Mode = e.Kind() | 0o600
		e.Meta = true
		return e
	}
	for _, tt := range []struct {
		name string
		// between runs after the entry is read and before SaveMeta;
		// it returns the ETag SaveMeta must report, "" for any.
		between      func(key string, meant Entry) string
		wantErr      error
		wantMode     uint32 // of the object afterwards
		wantTheirTag bool   // the entry returned is the other version's
	}{
		{"unchanged object", func(string, Entry) string { return "" }, nil, 0o100600, false},
		{"replaced by another program", func(key string, _ Entry) string {
			return put(key, "theirs", map[string]string{MetaMode: "33261"}).ETag // 0100755
		}, ErrMetaReplaced, 0o100755, true},
		{"own copy, answer lost", func(key string, meant Entry) string {
			// The same metadata on another version: what this mount's
			// copy left when its answer did not arrive.
			return put(key, "mine, copied", ObjectMeta(meant, key, false).User).ETag
		}, nil, 0o100600, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			key := "meta/" + tt.name
			e := put(key, "data", map[string]string{MetaMode: "33188"}) // 0100644
			meant := chmod(e)
			theirs := tt.between(key, meant)
			got, err := SaveMeta(ctx, b, key, meant)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("SaveMeta: %v, want %v", err, tt.wantErr)
			}
			if tt.wantTheirTag && got.ETag != theirs {
				t.Errorf("entry returned has ETag %s, want the version there now, %s", got.ETag, theirs)
			}
			o, err := b.Head(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if now := EntryFromObject(o); now.Mode != tt.wantMode || got.Mode != tt.wantMode {
				t.Errorf("mode stored %o, returned %o; want %o", now.Mode, got.Mode, tt.wantMode)
			}
		})
	}
}
