package bucket

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// maxKeyLen is the longest full key S3 accepts, in bytes.
const maxKeyLen = 1024

// keyspace maps keys relative to the workspace prefix to full bucket keys
// and back. It is the one place where the prefix is added or stripped.
type keyspace struct {
	prefix string // "" or ending in "/"; validated by newKeyspace
}

func newKeyspace(prefix string) (keyspace, error) {
	if prefix == "" {
		return keyspace{}, nil
	}
	if !strings.HasSuffix(prefix, "/") {
		return keyspace{}, fmt.Errorf("prefix %q does not end in /", prefix)
	}
	if err := checkRel(prefix); err != nil {
		return keyspace{}, fmt.Errorf("prefix %q: %w", prefix, err)
	}
	return keyspace{prefix: prefix}, nil
}

// object maps the relative key of an object (or of a directory marker,
// ending in "/") to its full key, refusing any key that could address
// something outside the prefix. The empty key is refused: it would name
// the prefix itself.
func (ks keyspace) object(rel string) (string, error) {
	if rel == "" {
		return "", fmt.Errorf("empty key: %w", ErrInvalidKey)
	}
	if err := checkRel(rel); err != nil {
		return "", err
	}
	return ks.join(rel)
}

// dir maps a directory to list: "" (the prefix itself) or a relative key
// ending in "/".
func (ks keyspace) dir(rel string) (string, error) {
	if rel == "" {
		return ks.prefix, nil
	}
	if !strings.HasSuffix(rel, "/") {
		return "", fmt.Errorf("directory %q does not end in /: %w", rel, ErrInvalidKey)
	}
	return ks.object(rel)
}

func (ks keyspace) join(rel string) (string, error) {
	full := ks.prefix + rel
	if len(full) > maxKeyLen {
		return "", fmt.Errorf("key of %d bytes with the prefix, over %d: %w", len(full), maxKeyLen, ErrKeyTooLong)
	}
	return full, nil
}

// position maps a relative key to its full key only as a place in the
// order of keys (a listing's StartAfter), never to address an object: it
// is not validated, since it may be any key a listing returned.
func (ks keyspace) position(rel string) string { return ks.prefix + rel }

// rel strips the prefix from a full key the server returned. It reports
// false for a key outside the prefix, which a well-behaved server never
// returns for a listing of the prefix. The result is not validated: a
// listing may hold keys that object() would refuse (a//b, a/../b), and
// callers decide what to show of them.
func (ks keyspace) rel(full string) (string, bool) {
	return strings.CutPrefix(full, ks.prefix)
}

// checkRel validates a non-empty relative key: valid UTF-8, no NUL, no
// leading "/", and no empty, "." or ".." segment (a single trailing "/"
// is allowed and marks a directory).
func checkRel(rel string) error {
	if !utf8.ValidString(rel) {
		return fmt.Errorf("key %q is not valid UTF-8: %w", rel, ErrInvalidKey)
	}
	if strings.IndexByte(rel, 0) >= 0 {
		return fmt.Errorf("key %q holds a NUL byte: %w", rel, ErrInvalidKey)
	}
	body := strings.TrimSuffix(rel, "/")
	for seg := range strings.SplitSeq(body, "/") {
		switch seg {
		case "":
			return fmt.Errorf("key %q has an empty segment: %w", rel, ErrInvalidKey)
		case ".", "..":
			return fmt.Errorf("key %q has a %q segment: %w", rel, seg, ErrInvalidKey)
		}
	}
	return nil
}
