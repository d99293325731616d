package vfs

import "testing"

// TestInos: a name gets the same inode number each time a node is made
// for it, while no other node holds that number; a renamed node's number
// follows it to its new name; a node revived before its release keeps
// its number.
func TestInos(t *testing.T) {
	type node struct{ name string }
	var inos Inos[*node]
	gone := func() bool { return true }
	a1 := &node{"a, first"}
	ino := inos.Take("a", a1)
	if ino&^inoMask != inoDerived {
		t.Fatalf("Take gave %#x, not a derived number", ino)
	}
	if got := inos.Take("a", &node{"a, while the first lives"}); got != 0 {
		t.Errorf("a second node for a live number got %#x, want 0 (the caller's choice)", got)
	}
	inos.Release(ino, &node{"not the holder"}, gone)
	inos.Release(ino, a1, func() bool { return false }) // revived meanwhile
	if got := inos.Take("a", &node{"a, after releases that must not count"}); got != 0 {
		t.Errorf("the number was freed by a release of another node, or of a revived one: %#x", got)
	}
	inos.Release(ino, a1, gone)
	a2 := &node{"a, after a forget"}
	if got := inos.Take("a", a2); got != ino {
		t.Errorf("a node made again for a: %#x, want %#x", got, ino)
	}

	// a is renamed to b and forgotten: b's next node gets a's number,
	// and a new a gets none while that node lives.
	inos.Moved("b", ino)
	inos.Release(ino, a2, gone)
	b := &node{"b"}
	if got := inos.Take("b", b); got != ino {
		t.Errorf("the renamed file's next node: %#x, want its number %#x", got, ino)
	}
	if got := inos.Take("a", &node{"a, new"}); got != 0 {
		t.Errorf("a new file under the old name got %#x, the renamed file's number", got)
	}
	inos.Release(0x5, b, gone) // not a derived number: b's stays taken
	if got := inos.Take("a", &node{"a, newer"}); got != 0 {
		t.Errorf("a release of a number not the table's freed b's (%#x): a got %#x", ino, got)
	}
}
