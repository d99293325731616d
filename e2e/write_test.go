package e2e

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"mount-ws/internal/detdata"
)

const mib = 1 << 20

// writeFile creates (or truncates) path, writes data in chunks of chunk
// bytes and closes it, failing the test with the step that failed.
func writeFile(t *testing.T, path string, data io.Reader, chunk int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatalf("create %s: %v", path, err)
	}
	buf := make([]byte, chunk)
	var off int64
	for {
		n, rerr := io.ReadFull(data, buf)
		if n > 0 {
			if _, err := f.Write(buf[:n]); err != nil {
				f.Close()
				t.Fatalf("write %s at offset %d: %v", path, off, err)
			}
			off += int64(n)
		}
		if rerr != nil {
			break
		}
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close %s after writing %d bytes: %v", path, off, err)
	}
}

// wantMountBytes checks what the mount shows at path: size and content.
func wantMountBytes(t *testing.T, path string, want []byte) {
	t.Helper()
	if fi, err := os.Stat(path); err != nil {
		t.Errorf("mount: stat %s: %v", path, err)
		return
	} else if fi.Size() != int64(len(want)) {
		t.Errorf("mount: stat %s: size %d, want %d", path, fi.Size(), len(want))
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("mount: read %s: %v", path, err)
		return
	}
	if d := diffBytes(got, want); d != "" {
		t.Errorf("mount: read %s: %s", path, d)
	}
}

func TestCreateWriteClose(t *testing.T) {
	t.Parallel()
	ws := newWorkspace(t)
	// A staging limit well above the largest file here.
	m := mountWS(t, ws, mountOpts{extra: []string{"--cache-size-mib", "256"}})
	tests := []struct {
		name  string
		size  int64
		chunk int
		// multipart: the object must have been uploaded in parts (its
		// ETag has a part count).
		multipart bool
	}{
		{"empty", 0, mib, false},
		{"one byte", 1, mib, false},
		{"4 KiB in 100-byte writes", 4096, 100, false},
		{"1 MiB plus one in 1 MiB writes", mib + 1, mib, false},
		{"64 MiB in 1 MiB writes", 64 * mib, mib, true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seed := uint64(100 + i)
			rel := slug(tt.name, 40) + ".bin"
			writeFile(t, m.path(rel), detdata.New(seed, tt.size), tt.chunk)
			ws.wantDetdata(t, rel, seed, tt.size)
			if h := ws.head(t, rel); h != nil && tt.multipart && !strings.Contains(strings.Trim(*h.ETag, `"`), "-") {
				t.Errorf("bucket: %s has ETag %s: a single PUT, want a multipart upload (ETag ending in -<parts>)", ws.key(rel), *h.ETag)
			}
			if fi, err := os.Stat(m.path(rel)); err != nil || fi.Size() != tt.size {
				t.Errorf("mount: stat %s after close: %v, want size %d", rel, statSize(fi, err), tt.size)
			}
			f, err := os.Open(m.path(rel))
			if err != nil {
				t.Fatalf("mount: open %s for reading: %v", rel, err)
			}
			defer f.Close()
			if err := detdata.Verify(f, seed, tt.size); err != nil {
				t.Errorf("mount: read %s back: %v", rel, err)
			}
		})
	}

	// What fsync reported is in the bucket before close.
	t.Run("fsync before close", func(t *testing.T) {
		rel := "fsynced.txt"
		f, err := os.Create(m.path(rel))
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		defer f.Close()
		var want []byte
		for i, part := range []string{"first line\n", "second line\n", strings.Repeat("third ", 1000)} {
			if _, err := f.WriteString(part); err != nil {
				t.Fatalf("write part %d: %v", i, err)
			}
			want = append(want, part...)
			if err := f.Sync(); err != nil {
				t.Fatalf("fsync after part %d: %v", i, err)
			}
			ws.wantObject(t, rel, want)
		}
		if err := f.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		ws.wantObject(t, rel, want)
	})

	t.Run("20 MiB written backwards in 1 MiB pwrites", func(t *testing.T) {
		const size = 20 * mib
		want, _ := io.ReadAll(detdata.New(300, size))
		f, err := os.Create(m.path("backwards.bin"))
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		defer f.Close()
		for off := size - mib; off >= 0; off -= mib {
			if _, err := f.WriteAt(want[off:off+mib], int64(off)); err != nil {
				t.Fatalf("pwrite at %d: %v", off, err)
			}
		}
		if err := f.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		ws.wantObject(t, "backwards.bin", want)
	})

	t.Run("sparse file", func(t *testing.T) {
		want := make([]byte, 10*mib+5)
		copy(want, "head")
		copy(want[10*mib:], "tail!")
		f, err := os.Create(m.path("sparse.bin"))
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		defer f.Close()
		if _, err := f.WriteAt([]byte("tail!"), 10*mib); err != nil {
			t.Fatalf("pwrite at 10 MiB: %v", err)
		}
		if _, err := f.WriteAt([]byte("head"), 0); err != nil {
			t.Fatalf("pwrite at 0: %v", err)
		}
		if err := f.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		ws.wantObject(t, "sparse.bin", want)
	})

	t.Run("200 files from 8 goroutines", func(t *testing.T) {
		if err := os.Mkdir(m.path("many"), 0o755); err != nil {
			t.Fatalf("mkdir many: %v", err)
		}
		const n, workers = 200, 8
		body := func(i int) []byte { return []byte(fmt.Sprintf("file %d\n%s", i, strings.Repeat("x", i*20))) }
		errs := make(chan error, n)
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for i := w; i < n; i += workers {
					errs <- os.WriteFile(m.path(fmt.Sprintf("many/f%03d", i)), body(i), 0o644)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("write: %v", err)
			}
		}
		keys := ws.listKeys(t, "many/")
		want := []string{"many/"}
		for i := range n {
			want = append(want, fmt.Sprintf("many/f%03d", i))
		}
		if !slices.Equal(keys, want) {
			t.Errorf("bucket: %d keys under many/, want the marker and %d files", len(keys), n)
		}
		for i := range n {
			if got, ok := ws.getObject(t, fmt.Sprintf("many/f%03d", i)); !ok || !bytes.Equal(got, body(i)) {
				t.Errorf("bucket: many/f%03d: %d bytes (found: %v), want %d", i, len(got), ok, len(body(i)))
			}
		}
		names, err := readDirNames(m.path("many"))
		if err != nil {
			t.Errorf("mount: ls many: %v", err)
		}
		var missing []string
		for _, k := range want[1:] {
			if !slices.Contains(names, strings.TrimPrefix(k, "many/")) {
				missing = append(missing, k)
			}
		}
		if len(missing) > 0 || len(names) != n {
			t.Errorf("mount: ls many right after the writes: %d names, want %d; missing %q", len(names), n, missing)
		}
	})

	t.Run("O_EXCL on an existing file", func(t *testing.T) {
		writeFile(t, m.path("exclusive.txt"), strings.NewReader("first"), 4096)
		_, err := os.OpenFile(m.path("exclusive.txt"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		wantErrno(t, "open(O_CREAT|O_EXCL) of an existing file", err, syscall.EEXIST)
		ws.wantObject(t, "exclusive.txt", []byte("first"))
	})

	t.Run("create in a new subdirectory", func(t *testing.T) {
		if err := os.MkdirAll(m.path("a/b/c"), 0o755); err != nil {
			t.Fatalf("mkdir -p a/b/c: %v", err)
		}
		want := []byte("nested\n")
		writeFile(t, m.path("a/b/c/file.txt"), bytes.NewReader(want), 4096)
		ws.wantObject(t, "a/b/c/file.txt", want)
	})
}

func statSize(fi os.FileInfo, err error) string {
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("size %d", fi.Size())
}

// modification is one change to an existing file, made through the mount
// and, identically, to an in-memory model of its bytes.
type modification struct {
	name  string
	apply func(t *testing.T, path string, size int) // size: the file's size before
	model func(old []byte) []byte
}

func patch(old []byte, off int, p []byte) []byte {
	n := max(len(old), off+len(p))
	out := make([]byte, n)
	copy(out, old)
	copy(out[off:], p)
	return out
}

func resize(old []byte, n int) []byte {
	out := make([]byte, n)
	copy(out, old)
	return out
}

func openAndDo(t *testing.T, path string, flag int, what string, do func(f *os.File) error) {
	t.Helper()
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		t.Fatalf("open %s for %s: %v", path, what, err)
	}
	if err := do(f); err != nil {
		f.Close()
		t.Fatalf("%s on %s: %v", what, path, err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close %s after %s: %v", path, what, err)
	}
}

func modifications() []modification {
	xs := bytes.Repeat([]byte("X"), 4096)
	return []modification{
		{"O_TRUNC overwrite", func(t *testing.T, p string, _ int) {
			openAndDo(t, p, os.O_WRONLY|os.O_TRUNC, "overwrite", func(f *os.File) error {
				_, err := f.WriteString("overwritten\n")
				return err
			})
		}, func([]byte) []byte { return []byte("overwritten\n") }},
		{"O_APPEND twice", func(t *testing.T, p string, _ int) {
			for _, s := range []string{"+tail one\n", "+tail two\n"} {
				openAndDo(t, p, os.O_WRONLY|os.O_APPEND, "append", func(f *os.File) error {
					_, err := f.WriteString(s)
					return err
				})
			}
		}, func(old []byte) []byte { return append(append([]byte(nil), old...), "+tail one\n+tail two\n"...) }},
		{"write in the middle", func(t *testing.T, p string, size int) {
			openAndDo(t, p, os.O_WRONLY, "pwrite", func(f *os.File) error {
				_, err := f.WriteAt([]byte("MIDDLE"), int64(size/2))
				return err
			})
		}, func(old []byte) []byte { return patch(old, len(old)/2, []byte("MIDDLE")) }},
		{"write past the end", func(t *testing.T, p string, size int) {
			openAndDo(t, p, os.O_WRONLY, "pwrite", func(f *os.File) error {
				_, err := f.WriteAt([]byte("AFTER A HOLE"), int64(size+1000))
				return err
			})
		}, func(old []byte) []byte { return patch(old, len(old)+1000, []byte("AFTER A HOLE")) }},
		{"dd conv=notrunc", func(t *testing.T, p string, _ int) {
			requireTool(t, "dd")
			src := filepath.Join(t.TempDir(), "xs")
			if err := os.WriteFile(src, xs, 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("dd", "if="+src, "of="+p, "bs=4096", "seek=1", "conv=notrunc").CombinedOutput(); err != nil {
				t.Fatalf("dd conv=notrunc: %v: %s", err, out)
			}
		}, func(old []byte) []byte { return patch(old, 4096, xs) }},
		{"truncate smaller", func(t *testing.T, p string, size int) {
			if err := os.Truncate(p, int64(size/3)); err != nil {
				t.Fatalf("truncate %s to %d: %v", p, size/3, err)
			}
		}, func(old []byte) []byte { return resize(old, len(old)/3) }},
		{"truncate larger", func(t *testing.T, p string, size int) {
			if err := os.Truncate(p, int64(size+5000)); err != nil {
				t.Fatalf("truncate %s to %d: %v", p, size+5000, err)
			}
		}, func(old []byte) []byte { return resize(old, len(old)+5000) }},
		{"truncate to zero", func(t *testing.T, p string, _ int) {
			if err := os.Truncate(p, 0); err != nil {
				t.Fatalf("truncate %s to 0: %v", p, err)
			}
		}, func([]byte) []byte { return []byte{} }},
		{"ftruncate smaller then write", func(t *testing.T, p string, size int) {
			openAndDo(t, p, os.O_RDWR, "ftruncate", func(f *os.File) error {
				if err := f.Truncate(int64(size / 2)); err != nil {
					return err
				}
				_, err := f.WriteAt([]byte("END"), int64(size/2))
				return err
			})
		}, func(old []byte) []byte { return append(resize(old, len(old)/2), "END"...) }},
		{"ftruncate larger", func(t *testing.T, p string, size int) {
			openAndDo(t, p, os.O_RDWR, "ftruncate", func(f *os.File) error {
				return f.Truncate(int64(size + mib))
			})
		}, func(old []byte) []byte { return resize(old, len(old)+mib) }},
	}
}

// TestModifyExisting changes files that exist in the bucket before the mount
// (so mount-ws must start from their stored bytes) and checks the bucket
// against a model after each change.
func TestModifyExisting(t *testing.T) {
	t.Parallel()
	ws := newWorkspace(t)
	sizes := []struct {
		name string
		size int
	}{{"small", 1000}, {"5 MiB", 5*mib + 123}}
	mods := modifications()
	base := map[string][]byte{}
	for si, s := range sizes {
		for mi, mod := range mods {
			rel := slug(s.name, 10) + "/" + slug(mod.name, 40) + ".bin"
			b, _ := io.ReadAll(detdata.New(uint64(1000+si*100+mi), int64(s.size)))
			base[rel] = b
			ws.putObject(t, rel, b, nil)
		}
	}
	m := mountWS(t, ws, mountOpts{})
	for _, s := range sizes {
		t.Run(s.name, func(t *testing.T) {
			for _, mod := range mods {
				t.Run(mod.name, func(t *testing.T) {
					t.Parallel()
					rel := slug(s.name, 10) + "/" + slug(mod.name, 40) + ".bin"
					want := mod.model(base[rel])
					mod.apply(t, m.path(rel), s.size)
					ws.wantObject(t, rel, want)
					wantMountBytes(t, m.path(rel), want)
				})
			}
		})
	}

	t.Run("two handles see one file", func(t *testing.T) {
		rel := "shared.txt"
		ws.putObject(t, rel, []byte("0123456789"), nil)
		f1, err := os.OpenFile(m.path(rel), os.O_RDWR, 0)
		if err != nil {
			t.Fatalf("open handle 1: %v", err)
		}
		defer f1.Close()
		f2, err := os.OpenFile(m.path(rel), os.O_RDWR, 0)
		if err != nil {
			t.Fatalf("open handle 2: %v", err)
		}
		defer f2.Close()
		readAt := func(f *os.File, name string, want string) {
			t.Helper()
			buf := make([]byte, 64)
			n, err := f.ReadAt(buf, 0)
			if err != nil && err != io.EOF {
				t.Errorf("read through %s: %v", name, err)
			}
			if got := string(buf[:n]); got != want {
				t.Errorf("read through %s: %q, want %q", name, got, want)
			}
		}
		if _, err := f1.WriteAt([]byte("AB"), 0); err != nil {
			t.Fatalf("write through handle 1: %v", err)
		}
		readAt(f2, "handle 2 after handle 1 wrote", "AB23456789")
		if _, err := f2.WriteAt([]byte("XYZ"), 8); err != nil {
			t.Fatalf("write through handle 2: %v", err)
		}
		readAt(f1, "handle 1 after handle 2 wrote", "AB234567XYZ")
		if fi, err := os.Stat(m.path(rel)); err != nil || fi.Size() != 11 {
			t.Errorf("stat while both are open: %s, want size 11", statSize(fi, err))
		}
		if err := f1.Close(); err != nil {
			t.Errorf("close handle 1: %v", err)
		}
		readAt(f2, "handle 2 after handle 1 closed", "AB234567XYZ")
		if err := f2.Close(); err != nil {
			t.Errorf("close handle 2: %v", err)
		}
		ws.wantObject(t, rel, []byte("AB234567XYZ"))
	})
}

// TestMmapWrite writes through a shared mapping, as numpy.memmap does:
// msync, then close, and the bytes are in the bucket.
func TestMmapWrite(t *testing.T) {
	t.Parallel()
	ws := newWorkspace(t)
	m := mountWS(t, ws, mountOpts{})
	const size = 3*mib + 100
	f, err := os.OpenFile(m.path("mapped.bin"), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatalf("ftruncate to %d: %v", size, err)
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		t.Fatalf("mmap MAP_SHARED read-write: %v", err)
	}
	want := make([]byte, size)
	for i := 0; i < size; i += 4093 {
		mem[i], want[i] = byte(i>>8|1), byte(i>>8|1)
	}
	if err := unix.Msync(mem, unix.MS_SYNC); err != nil {
		t.Errorf("msync: %v", err)
	}
	if err := syscall.Munmap(mem); err != nil {
		t.Errorf("munmap: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	ws.wantObject(t, "mapped.bin", want)
}

// TestCloseUnderSignals closes files while the process keeps receiving
// signals (a Python program with a 1 ms interval timer; Go programs get
// SIGURG for preemption). The kernel turns a signal during a FUSE request
// into an INTERRUPT, but close(2) must still either commit or fail with
// EIO: an EINTR from close leaves the application not knowing whether its
// data is stored, and neither Python nor Go retries close.
func TestCloseUnderSignals(t *testing.T) {
	t.Parallel()
	requireTool(t, "python3")
	ws := newWorkspace(t)
	m := mountWS(t, ws, mountOpts{})
	const files, size = 6, 8 * mib
	// The script prints one line per file: "ok" or why close failed.
	script := `
import signal, sys
signal.signal(signal.SIGALRM, lambda *a: None)
signal.setitimer(signal.ITIMER_REAL, 0.0005, 0.0005)
data = bytes(range(256)) * (int(sys.argv[3]) // 256)
for i in range(int(sys.argv[2])):
    f = open("%s/f%d.bin" % (sys.argv[1], i), "wb")
    f.write(data)
    f.flush()
    try:
        f.close()
        print("ok")
    except OSError as e:
        print(e)
signal.setitimer(signal.ITIMER_REAL, 0)
`
	cmd := exec.Command("python3", "-c", script, m.path(""), fmt.Sprint(files), fmt.Sprint(size))
	cmd.Dir = "/"
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3: %v\n%s", err, out)
	}
	results := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(results) != files {
		t.Fatalf("python3 printed %q, want one line per file", out)
	}
	want := bytes.Repeat(func() []byte {
		b := make([]byte, 256)
		for i := range b {
			b[i] = byte(i)
		}
		return b
	}(), size/256)
	for i, r := range results {
		if r != "ok" {
			t.Errorf("close of f%d.bin (%d bytes) under a 0.5 ms SIGALRM timer: %s; want success (or EIO if the upload failed)", i, size, r)
			continue
		}
		ws.wantObject(t, fmt.Sprintf("f%d.bin", i), want)
	}
}
