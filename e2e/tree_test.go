package e2e

import (
	"archive/tar"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"mount-ws/internal/detdata"
)

// treeEntry is what the tests compare of one file, directory or symlink.
type treeEntry struct {
	kind   string // "file", "dir" or "symlink"
	perm   fs.FileMode
	mtime  int64 // Unix seconds
	size   int64
	sum    [sha256.Size]byte // files only
	target string            // symlinks only
}

// makeTree fills dir with a deterministic tree of n files of mixed sizes
// (mostly small, a few of several MiB) in nested directories, with varied
// modes and whole-second mtimes in the past, and a few relative symlinks.
func makeTree(t *testing.T, dir string, seed uint64, n int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 0))
	dirs := []string{"."}
	for i := 0; i < n/10+1; i++ {
		parent := dirs[rng.IntN(len(dirs))]
		d := filepath.Join(parent, fmt.Sprintf("dir%02d", i))
		if strings.Count(d, "/") > 3 {
			d = fmt.Sprintf("dir%02d", i)
		}
		dirs = append(dirs, d)
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	fileModes := []fs.FileMode{0o644, 0o600, 0o755, 0o640, 0o444}
	base := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC).Unix()
	var files []string
	for i := 0; i < n; i++ {
		var size int64
		switch r := rng.IntN(100); {
		case r < 5:
			size = 0
		case r < 80:
			size = rng.Int64N(8 << 10)
		case r < 97:
			size = 64<<10 + rng.Int64N(mib)
		default:
			size = 6*mib + rng.Int64N(4*mib)
		}
		rel := filepath.Join(dirs[rng.IntN(len(dirs))], fmt.Sprintf("file%03d.dat", i))
		p := filepath.Join(dir, rel)
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(f, detdata.New(seed*1000+uint64(i), size)); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, fileModes[rng.IntN(len(fileModes))]); err != nil {
			t.Fatal(err)
		}
		mt := time.Unix(base+rng.Int64N(86400*300), 0)
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
		files = append(files, rel)
	}
	for i := 0; i < 3 && len(files) > 0; i++ {
		target := files[rng.IntN(len(files))]
		link := filepath.Join(filepath.Dir(target), fmt.Sprintf("link%d", i))
		if err := os.Symlink(filepath.Base(target), filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	// Directories last, deepest first, so their mtimes stay put.
	dirModes := []fs.FileMode{0o755, 0o750, 0o700}
	for i := len(dirs) - 1; i > 0; i-- {
		p := filepath.Join(dir, dirs[i])
		if err := os.Chmod(p, dirModes[rng.IntN(len(dirModes))]); err != nil {
			t.Fatal(err)
		}
		mt := time.Unix(base-int64(i)*3600, 0)
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
}

// snapshotTree walks dir (not following symlinks) and describes every
// entry below it by relative path.
func snapshotTree(t *testing.T, dir string) map[string]treeEntry {
	t.Helper()
	snap := map[string]treeEntry{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		e := treeEntry{perm: fi.Mode().Perm(), mtime: fi.ModTime().Unix(), size: fi.Size()}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			e.kind = "symlink"
			if e.target, err = os.Readlink(p); err != nil {
				return err
			}
			e.perm, e.mtime = 0, 0
		case fi.IsDir():
			e.kind, e.size = "dir", 0
		case fi.Mode().IsRegular():
			e.kind = "file"
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			e.sum = sha256.Sum256(b)
		default:
			e.kind = fi.Mode().Type().String()
		}
		snap[rel] = e
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	return snap
}

// treeDiff lists how got differs from want; what to compare is set by
// the flags (cp -r without -p keeps neither modes nor mtimes).
func treeDiff(got, want map[string]treeEntry, modes, mtimes bool) []string {
	var d []string
	for rel, w := range want {
		g, ok := got[rel]
		if !ok {
			d = append(d, fmt.Sprintf("%s: missing (want %s)", rel, w.kind))
			continue
		}
		switch {
		case g.kind != w.kind:
			d = append(d, fmt.Sprintf("%s: a %s, want a %s", rel, g.kind, w.kind))
		case w.kind == "file" && (g.size != w.size || g.sum != w.sum):
			d = append(d, fmt.Sprintf("%s: %d bytes (sha256 %x), want %d bytes (sha256 %x)", rel, g.size, g.sum[:6], w.size, w.sum[:6]))
		case w.kind == "symlink" && g.target != w.target:
			d = append(d, fmt.Sprintf("%s: symlink to %q, want %q", rel, g.target, w.target))
		}
		if g.kind != w.kind || w.kind == "symlink" {
			continue
		}
		if modes && g.perm != w.perm {
			d = append(d, fmt.Sprintf("%s: %s mode %04o, want %04o", rel, w.kind, g.perm, w.perm))
		}
		if mtimes && g.mtime != w.mtime {
			d = append(d, fmt.Sprintf("%s: %s mtime %s, want %s", rel, w.kind, time.Unix(g.mtime, 0).UTC().Format(time.RFC3339), time.Unix(w.mtime, 0).UTC().Format(time.RFC3339)))
		}
	}
	for rel, g := range got {
		if _, ok := want[rel]; !ok {
			d = append(d, fmt.Sprintf("%s: unexpected %s", rel, g.kind))
		}
	}
	sort.Strings(d)
	return d
}

// wantTree reports the differences, at most 25 of them.
func wantTree(t *testing.T, what string, got, want map[string]treeEntry, modes, mtimes bool) {
	t.Helper()
	d := treeDiff(got, want, modes, mtimes)
	if len(d) == 0 {
		return
	}
	n := len(d)
	if n > 25 {
		d = append(d[:25], fmt.Sprintf("... and %d more", n-25))
	}
	t.Errorf("%s: %d difference(s) in a tree of %d entries:\n\t%s", what, n, len(want), strings.Join(d, "\n\t"))
}

// requireTool skips t (fails it when CI is set, as fusetest.Require does)
// unless the command is installed.
func requireTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err == nil {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed, and CI must run this test (apt-get install %s)", name, name)
	}
	t.Skipf("%s is not installed (apt-get install %s)", name, name)
}

// run runs a command in dir and fails the test with its output if it fails.
func run(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s (in %s): %v\n%s", name, strings.Join(args, " "), dir, err, out)
	}
	return string(out)
}

// wantTreeInBucket checks every file of the tree through the SDK.
func (w *workspace) wantTreeInBucket(t *testing.T, localDir, relDir string) {
	t.Helper()
	for rel, e := range snapshotTree(t, localDir) {
		if e.kind != "file" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(localDir, rel))
		if err != nil {
			t.Fatal(err)
		}
		w.wantObject(t, relDir+"/"+rel, b)
	}
}

func TestCopyTreeInAndOut(t *testing.T) {
	t.Parallel()
	ws := newWorkspace(t)
	src := t.TempDir()
	makeTree(t, src, 8, 60)
	want := snapshotTree(t, src)
	cacheDir := t.TempDir()
	m := mountWS(t, ws, mountOpts{cacheDir: cacheDir})
	// cp -r without -p applies the umask: its modes match only when the
	// umask clears none of the tree's bits (0755 at most).
	cpModes := umask(t)&0o755 == 0
	tests := []struct {
		name          string
		in            func(t *testing.T, dst string)
		out           func(t *testing.T, from, dst string)
		modes, mtimes bool
	}{
		{"cp -r", func(t *testing.T, dst string) {
			run(t, "/", "cp", "-r", src, dst)
		}, func(t *testing.T, from, dst string) {
			run(t, "/", "cp", "-r", from, dst)
		}, cpModes, false},
		{"cp -rp", func(t *testing.T, dst string) {
			run(t, "/", "cp", "-rp", src, dst)
		}, func(t *testing.T, from, dst string) {
			run(t, "/", "cp", "-rp", from, dst)
		}, true, true},
		{"rsync -a", func(t *testing.T, dst string) {
			run(t, "/", "rsync", "-a", src+"/", dst+"/")
		}, func(t *testing.T, from, dst string) {
			run(t, "/", "rsync", "-a", from+"/", dst+"/")
		}, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name+" in", func(t *testing.T) {
			requireTool(t, strings.Fields(tt.name)[0])
			rel := slug(tt.name, 20)
			tt.in(t, m.path(rel))
			wantTree(t, "the tree copied into the mount", snapshotTree(t, m.path(rel)), want, tt.modes, tt.mtimes)
			ws.wantTreeInBucket(t, src, rel)
		})
	}
	// Copy back out from a fresh mount, so that what is compared comes
	// from the bucket, not from the first mount's memory.
	m = m.remount(t, mountOpts{cacheDir: cacheDir})
	for _, tt := range tests {
		t.Run(tt.name+" out", func(t *testing.T) {
			requireTool(t, strings.Fields(tt.name)[0])
			rel := slug(tt.name, 20)
			dst := filepath.Join(t.TempDir(), "out")
			tt.out(t, m.path(rel), dst)
			wantTree(t, "the tree copied out of a fresh mount", snapshotTree(t, dst), want, tt.modes, tt.mtimes)
		})
	}
}

// tarMember is what the tar round trip compares of one archive member.
type tarMember struct {
	typ   byte
	mode  int64
	mtime int64
	size  int64
	sum   [sha256.Size]byte
	link  string
}

// makeArchive writes an archive of n files of mixed sizes in nested
// directories, with their directories and a few symlinks, and returns
// its members.
func makeArchive(t *testing.T, path string, seed uint64, n int) map[string]tarMember {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	members := map[string]tarMember{}
	rng := rand.New(rand.NewPCG(seed, 1))
	mt := time.Date(2023, 7, 14, 9, 30, 0, 0, time.UTC)
	add := func(h *tar.Header, body []byte) {
		t.Helper()
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
		members[strings.TrimSuffix(h.Name, "/")] = tarMember{typ: h.Typeflag, mode: h.Mode, mtime: h.ModTime.Unix(), size: int64(len(body)), sum: sha256.Sum256(body), link: h.Linkname}
	}
	var dirs []string
	for i := range n / 15 {
		d := fmt.Sprintf("data/part-%02d", i%7)
		if i >= 7 {
			d = fmt.Sprintf("data/part-%02d/shard-%02d", i%7, i)
		}
		dirs = append(dirs, d)
	}
	// Parents before children, each directory once.
	seen := map[string]bool{}
	for _, d := range append([]string{"data"}, dirs...) {
		if seen[d] {
			continue
		}
		seen[d] = true
		add(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: mt.Add(-time.Duration(len(seen)) * time.Hour)}, nil)
	}
	modes := []int64{0o644, 0o600, 0o755, 0o640}
	var files []string
	for i := range n {
		var size int64
		switch r := rng.IntN(100); {
		case r < 3:
			size = 0
		case r < 85:
			size = rng.Int64N(16 << 10)
		case r < 99:
			size = 100<<10 + rng.Int64N(mib/2)
		default:
			size = 5*mib + rng.Int64N(3*mib)
		}
		body, _ := io.ReadAll(detdata.New(seed*10000+uint64(i), size))
		name := fmt.Sprintf("%s/f%03d.bin", dirs[rng.IntN(len(dirs))], i)
		add(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: modes[rng.IntN(len(modes))], Size: size,
			ModTime: mt.Add(time.Duration(rng.IntN(100000)) * time.Second)}, body)
		files = append(files, name)
	}
	for i := range 3 {
		target := files[rng.IntN(len(files))]
		add(&tar.Header{Typeflag: tar.TypeSymlink, Name: fmt.Sprintf("%s/link%d", filepath.Dir(target), i),
			Linkname: filepath.Base(target), Mode: 0o777, ModTime: mt}, nil)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return members
}

// readArchive lists the members of the archive at path, names relative to
// its top (no "./", no trailing "/"), without the top directory itself.
func readArchive(t *testing.T, path string) map[string]tarMember {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	members := map[string]tarMember{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return members
		}
		if err != nil {
			t.Fatalf("read %s: %v", path, err)
		}
		name := strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")
		if name == "" || name == "." {
			continue
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("read %s: member %s: %v", path, h.Name, err)
		}
		members[name] = tarMember{typ: h.Typeflag, mode: h.Mode & 0o7777, mtime: h.ModTime.Unix(), size: int64(len(body)), sum: sha256.Sum256(body), link: h.Linkname}
	}
}

func TestTarRoundTrip(t *testing.T) {
	t.Parallel()
	requireTool(t, "tar")
	ws := newWorkspace(t)
	tmp := t.TempDir()
	in := filepath.Join(tmp, "in.tar")
	want := makeArchive(t, in, 42, 300)
	m := mountWS(t, ws, mountOpts{})
	if err := os.Mkdir(m.path("x"), 0o755); err != nil {
		t.Fatalf("mkdir x: %v", err)
	}
	run(t, "/", "tar", "-x", "-p", "-f", in, "-C", m.path("x"))

	// Every file is in the bucket with its bytes.
	f, err := os.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		body, _ := io.ReadAll(tr)
		ws.wantObject(t, "x/"+h.Name, body)
	}

	// Back out from the same mount, then from a fresh one (what the bucket
	// kept, not what the first mount remembers).
	for i, what := range []string{"the same mount", "a fresh mount"} {
		if i == 1 {
			m = m.remount(t, mountOpts{})
		}
		out := filepath.Join(tmp, fmt.Sprintf("out%d.tar", i))
		run(t, "/", "tar", "-c", "-f", out, "-C", m.path("x"), ".")
		// The archive's files are not grouped by directory, so GNU tar
		// sets a directory's times when it moves on, and later members
		// change them again, on any filesystem (ext4 too): the same mount
		// shows those later times, as a local disk would. The directory
		// markers store what tar set, which a fresh mount shows.
		if d := archiveDiff(readArchive(t, out), want, i == 1); len(d) > 0 {
			n := len(d)
			if n > 25 {
				d = append(d[:25], fmt.Sprintf("... and %d more", n-25))
			}
			t.Errorf("tar -x into the mount, then tar -c from %s: %d difference(s) among %d members:\n\t%s", what, n, len(want), strings.Join(d, "\n\t"))
		}
	}

	// And the whole tree moves in one rename.
	before := ws.listKeys(t, "x/")
	if err := os.Rename(m.path("x"), m.path("y")); err != nil {
		t.Fatalf("rename x y (%d objects): %v", len(before), err)
	}
	if left := ws.listKeys(t, "x/"); len(left) > 0 {
		t.Errorf("bucket: %d keys left under x/ after the rename, e.g. %q", len(left), left[0])
	}
	after := ws.listKeys(t, "y/")
	for i, k := range before {
		before[i] = "y/" + strings.TrimPrefix(k, "x/")
	}
	if !slices.Equal(after, before) {
		t.Errorf("bucket: %d keys under y/ after the rename, want the %d that were under x/", len(after), len(before))
	}
}

// archiveDiff lists how the members got differ from want; directories'
// mtimes only with dirTimes.
func archiveDiff(got, want map[string]tarMember, dirTimes bool) []string {
	var d []string
	for name, w := range want {
		g, ok := got[name]
		switch {
		case !ok:
			d = append(d, fmt.Sprintf("%s: missing from tar -c", name))
		case g.typ != w.typ:
			d = append(d, fmt.Sprintf("%s: type %q, want %q", name, g.typ, w.typ))
		case g.size != w.size || g.sum != w.sum:
			d = append(d, fmt.Sprintf("%s: %d bytes (sha256 %x), want %d bytes (sha256 %x)", name, g.size, g.sum[:6], w.size, w.sum[:6]))
		case g.link != w.link:
			d = append(d, fmt.Sprintf("%s: link to %q, want %q", name, g.link, w.link))
		}
		if ok && g.typ == w.typ && w.typ != tar.TypeSymlink {
			if g.mode != w.mode {
				d = append(d, fmt.Sprintf("%s: mode %04o, want %04o", name, g.mode, w.mode))
			}
			if g.mtime != w.mtime && (dirTimes || w.typ != tar.TypeDir) {
				d = append(d, fmt.Sprintf("%s: mtime %s, want %s", name, time.Unix(g.mtime, 0).UTC().Format(time.RFC3339), time.Unix(w.mtime, 0).UTC().Format(time.RFC3339)))
			}
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			d = append(d, fmt.Sprintf("%s: in tar -c but not in the original archive", name))
		}
	}
	sort.Strings(d)
	return d
}
