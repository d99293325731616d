package bucket

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestPartReader(t *testing.T) {
	src := make([]byte, 3*partBuffer+123)
	for i := range src {
		src[i] = byte(i * 7)
	}
	tests := []struct {
		name   string
		off, n int64
	}{
		{"whole", 0, int64(len(src))},
		{"middle, across buffers", partBuffer - 10, partBuffer + 20},
		{"small tail", int64(len(src)) - 5, 5},
		{"empty", 10, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newPartReader(bytes.NewReader(src), tt.off, tt.n)
			want := src[tt.off : tt.off+tt.n]
			got, err := io.ReadAll(r)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("read %d bytes (%v), want %d equal bytes", len(got), err, len(want))
			}
			// The SDK rewinds a body to retry the request.
			if _, err := r.Seek(0, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			again, err := io.ReadAll(r)
			if err != nil || !bytes.Equal(again, want) {
				t.Fatalf("after rewinding: %d bytes (%v), want %d equal bytes", len(again), err, len(want))
			}
		})
	}

	r := newPartReader(bytes.NewReader(src[:100]), 50, 100) // source shorter than the part
	if _, err := io.ReadAll(r); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short source: %v, want io.ErrUnexpectedEOF", err)
	}
}
