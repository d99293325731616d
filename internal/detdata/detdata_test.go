package detdata

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

func TestReadAtMatchesSequentialRead(t *testing.T) {
	const size = 3*blockSize + 123
	all, err := io.ReadAll(New(7, size))
	if err != nil || len(all) != size {
		t.Fatalf("ReadAll: %d bytes, %v", len(all), err)
	}
	r := New(7, size)
	for _, off := range []int64{0, 1, blockSize - 1, blockSize, 2*blockSize + 5, size - 10} {
		p := make([]byte, 100)
		n, err := r.ReadAt(p, off)
		if want := min(100, size-off); int64(n) != want || (err != nil && err != io.EOF) {
			t.Fatalf("ReadAt(%d): n=%d err=%v", off, n, err)
		}
		if !bytes.Equal(p[:n], all[off:off+int64(n)]) {
			t.Errorf("ReadAt(%d) differs from the sequential read", off)
		}
	}
	if bytes.Equal(all[:blockSize], all[blockSize:2*blockSize]) {
		t.Error("consecutive blocks are equal: offsets would not be checked")
	}
	if other, _ := io.ReadAll(New(8, size)); bytes.Equal(other, all) {
		t.Error("different seeds give the same content")
	}
}

func TestVerify(t *testing.T) {
	const size = blockSize + 99
	if err := Verify(New(3, size), 3, size); err != nil {
		t.Errorf("own content: %v", err)
	}
	data, _ := io.ReadAll(New(3, size))
	data[blockSize+5] ^= 1
	if err := Verify(bytes.NewReader(data), 3, size); err == nil || !strings.Contains(err.Error(), "65541") {
		t.Errorf("flipped byte: %v", err)
	}
	if err := Verify(bytes.NewReader(data[:size-1]), 3, size); err == nil {
		t.Error("short content accepted")
	}
	if err := Verify(New(3, size+1), 3, size); err == nil {
		t.Error("long content accepted")
	}
}
