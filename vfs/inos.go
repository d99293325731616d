package vfs

import (
	"hash/fnv"
	"sync"
)

// Inos gives a node the inode number derived from its key, while no live
// node has that number. The kernel forgets inodes it does not use
// (memory pressure), and a node made again for the same name must show
// the same number: programs compare them (git's index, rsync, tar's
// hard-link detection, find -samefile), and posixtest's rename checks saw
// a renamed file change its number when the kernel had forgotten it in
// between. A number in use (a file renamed away from the name still holds
// it, or a hash collision) is not given twice: the node gets one the
// caller chooses (go-fuse's own, unique for the life of the mount). A
// renamed node keeps its number, so the table remembers it for the new
// name (a bounded number of them), for the node made after a forget.
//
// Nodes are compared with ==; N is a pointer to the caller's node type.
// The zero value is ready to use.
type Inos[N comparable] struct {
	mu      sync.Mutex
	live    map[uint64]N      // numbers given here, and the node holding each; guarded by mu
	renamed map[string]uint64 // numbers of renamed nodes, by new key; guarded by mu
}

// maxRenamed bounds Inos.renamed.
const maxRenamed = 1 << 16

// Derived numbers have bit 62 set and bit 63 clear: go-fuse numbers its
// own from 1<<63, and the root is 1.
const (
	inoDerived = 1 << 62
	inoMask    = inoDerived - 1
)

// Take returns the number for owner, a node about to be made for key, or
// 0 to let the caller choose one.
func (t *Inos[N]) Take(key string, owner N) uint64 {
	h := fnv.New64a()
	h.Write([]byte(key))
	ino := h.Sum64()&inoMask | inoDerived
	t.mu.Lock()
	defer t.mu.Unlock()
	if kept, ok := t.renamed[key]; ok {
		delete(t.renamed, key)
		if !t.usedLocked(kept) {
			ino = kept
		}
	}
	if t.usedLocked(ino) {
		return 0
	}
	if t.live == nil {
		t.live = make(map[uint64]N)
	}
	t.live[ino] = owner
	return ino
}

// usedLocked reports whether a live node holds ino.
func (t *Inos[N]) usedLocked(ino uint64) bool {
	_, ok := t.live[ino]
	return ok
}

// Release frees ino, the number of self, a node the kernel forgot; not if
// another node holds it now, or forgotten (asked under the table's lock)
// says that self was revived meanwhile.
func (t *Inos[N]) Release(ino uint64, self N, forgotten func() bool) {
	if ino&^inoMask != inoDerived {
		return // not one of the table's
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.live[ino] == self && forgotten() {
		delete(t.live, ino)
	}
}

// Moved records that the node numbered ino is now named key.
func (t *Inos[N]) Moved(key string, ino uint64) {
	if ino&^inoMask != inoDerived {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.renamed == nil {
		t.renamed = make(map[string]uint64)
	}
	if len(t.renamed) >= maxRenamed {
		for k := range t.renamed { // drop one, any
			delete(t.renamed, k)
			break
		}
	}
	t.renamed[key] = ino
}
