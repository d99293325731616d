package fs

import (
	"hash/fnv"
	"sync"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
)

// inoTable gives a node the inode number derived from its key, while no
// live node has that number. The kernel forgets inodes it does not use
// (memory pressure), and a node made again for the same name must show
// the same number: programs compare them (git's index, rsync, tar's
// hard-link detection, find -samefile), and posixtest's rename checks saw
// a renamed file change its number when the kernel had forgotten it in
// between. A number in use (a file renamed away from the name still holds
// it, or a hash collision) is not given twice: the node gets one of
// go-fuse's own, unique for the life of the mount, as before. A renamed
// node keeps its number, so the table remembers it for the new name
// (a bounded number of them), for the node made after a forget.
type inoTable struct {
	mu      sync.Mutex
	live    map[uint64]*fusefs.Inode // numbers given here, and the node holding each; guarded by mu
	renamed map[string]uint64        // numbers of renamed nodes, by new key; guarded by mu
}

// maxRenamed bounds inoTable.renamed.
const maxRenamed = 1 << 16

// Derived numbers have bit 62 set and bit 63 clear: go-fuse numbers its
// own from 1<<63, and the root is 1.
const (
	inoDerived = 1 << 62
	inoMask    = inoDerived - 1
)

// take returns the number for owner, a node about to be made for key, or
// 0 to let go-fuse choose one.
func (t *inoTable) take(key string, owner *fusefs.Inode) uint64 {
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
		t.live = make(map[uint64]*fusefs.Inode)
	}
	t.live[ino] = owner
	return ino
}

// usedLocked reports whether a live node holds ino.
func (t *inoTable) usedLocked(ino uint64) bool {
	_, ok := t.live[ino]
	return ok
}

// release frees the number of self, a node the kernel forgot; not if
// another node holds it now, or self was revived meanwhile.
func (t *inoTable) release(self *fusefs.Inode) {
	ino := self.StableAttr().Ino
	if ino&^inoMask != inoDerived {
		return // go-fuse's own, or the root's
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	// go-fuse may call OnForget of a directory that a lookup has just
	// revived, so the node is asked too.
	//lint:ignore SA1019 OnForget alone cannot tell a revived directory
	if t.live[ino] == self && self.Forgotten() {
		delete(t.live, ino)
	}
}

// moved records that the node numbered ino is now named key.
func (t *inoTable) moved(key string, ino uint64) {
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
