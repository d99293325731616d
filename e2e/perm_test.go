package e2e

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// nobody is the unprivileged user the permission tests act as.
const nobody = 65534

// asUser runs a shell script as uid and gid id in dir and returns its
// combined output and error.
func asUser(t *testing.T, id uint32, dir, script string) (string, error) {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: id, Gid: id, NoSetGroups: true}}
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// requireRoot skips (fails under CI) a test that must switch users.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Getuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal("this test acts as another user and must run as root under CI")
	}
	t.Skip("acting as another user needs root")
}

// TestPermissions checks that the kernel enforces the modes that the mount
// shows: with --allow-other, user nobody may do what the mode, owner and
// group allow and nothing else; without it, nothing at all.
func TestPermissions(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	w := newWorkspace(t)
	m := mountWS(t, w, mountOpts{extra: []string{"--allow-other"}})

	// Root (the mount's owner) sets the scene through the mount.
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(m.path("private.txt"), []byte("root's secret\n"), 0o600))
	must(os.Chmod(m.path("private.txt"), 0o600))
	must(os.WriteFile(m.path("public.txt"), []byte("everyone may read\n"), 0o644))
	must(os.Chmod(m.path("public.txt"), 0o644))
	must(os.Mkdir(m.path("rootdir"), 0o755))
	must(os.Chmod(m.path("rootdir"), 0o755))
	must(os.Mkdir(m.path("shared"), 0o777))
	must(os.Chmod(m.path("shared"), 0o777))
	must(os.Mkdir(m.path("sticky"), 0o777))
	must(os.Chmod(m.path("sticky"), os.ModeSticky|0o777))
	must(os.WriteFile(m.path("sticky/roots.txt"), []byte("root's, in a sticky directory\n"), 0o666))
	must(os.Chmod(m.path("sticky/roots.txt"), 0o666))

	refused := []struct{ what, script string }{
		{"read root's 0600 file", "cat private.txt"},
		{"append to root's 0600 file", "echo more >> private.txt"},
		{"append to root's 0644 file", "echo more >> public.txt"},
		{"truncate root's 0644 file", ": > public.txt"},
		{"delete root's file in root's 0755 directory", "rm -f public.txt"},
		{"create a file in root's 0755 directory", "touch rootdir/mine"},
		{"make a directory in root's 0755 directory", "mkdir rootdir/sub"},
		{"make a directory at the root (root's, 0755)", "mkdir top"},
		{"rename root's file", "mv public.txt shared/public.txt"},
		{"chmod root's file", "chmod 666 public.txt"},
		{"chown root's file", "chown 65534 public.txt"},
		{"set root's file's times", "touch -d 2001-01-01 public.txt"},
		{"delete root's file in a sticky directory", "rm -f sticky/roots.txt"},
	}
	for _, c := range refused {
		out, err := asUser(t, nobody, m.dir, c.script)
		if err == nil {
			t.Errorf("as nobody: %s (%q) succeeded, want permission denied", c.what, c.script)
		} else if !strings.Contains(out, "ermission denied") && !strings.Contains(out, "not permitted") {
			t.Errorf("as nobody: %s (%q) failed with %q, want permission denied", c.what, c.script, out)
		}
	}
	w.wantObject(t, "private.txt", []byte("root's secret\n"))
	w.wantObject(t, "public.txt", []byte("everyone may read\n"))
	w.wantObject(t, "sticky/roots.txt", []byte("root's, in a sticky directory\n"))
	w.wantNoObject(t, "rootdir/mine")
	w.wantNoObject(t, "rootdir/sub/")

	allowed := []struct{ what, script string }{
		{"read root's 0644 file", "cat public.txt"},
		{"list root's directory", "ls rootdir"},
		{"write a file in a 0777 directory", "echo mine > shared/mine.txt"},
		{"append to its own file", "echo more >> shared/mine.txt"},
		{"make a directory in a 0777 directory", "mkdir shared/mydir"},
		{"chmod its own file", "chmod 600 shared/mine.txt"},
		{"set its own file's times", "touch -d 2001-01-01 shared/mine.txt"},
		{"write a file in a sticky directory", "echo mine > sticky/mine.txt"},
		{"delete its own file in a sticky directory", "rm sticky/mine.txt"},
		{"write its own set-user-ID file", "echo a > shared/suid && chmod 6755 shared/suid && echo b >> shared/suid"},
	}
	for _, c := range allowed {
		if out, err := asUser(t, nobody, m.dir, c.script); err != nil {
			t.Errorf("as nobody: %s (%q) failed: %v: %s", c.what, c.script, err, out)
		}
	}
	w.wantObject(t, "shared/mine.txt", []byte("mine\nmore\n"))
	w.wantMeta(t, "shared/mine.txt", metaWant{mode: syscall.S_IFREG | 0o600, uid: nobody, gid: nobody, owner: true})
	w.wantMeta(t, "shared/mydir/", metaWant{uid: nobody, gid: nobody, owner: true})
	wantStat(t, m.path("shared/mine.txt"), statWant{mode: 0o600, uid: nobody, gid: nobody, owner: true})
	w.wantNoObject(t, "sticky/mine.txt")
	// The write cleared the set-ID bits, as Linux does.
	wantStat(t, m.path("shared/suid"), statWant{mode: 0o755})
	w.wantMeta(t, "shared/suid", metaWant{mode: syscall.S_IFREG | 0o755})
	// Root may still do anything.
	must(os.Remove(m.path("shared/mine.txt")))

	// Without --allow-other nobody gets in at all, whatever the modes.
	m.unmount(t)
	m = mountWS(t, w, mountOpts{})
	for _, script := range []string{"ls .", "cat public.txt", "touch shared/x"} {
		if out, err := asUser(t, nobody, m.dir, script); err == nil {
			t.Errorf("as nobody without --allow-other: %q succeeded: %s", script, out)
		}
	}
	w.wantNoObject(t, "shared/x")
}

// TestAllowRoot checks --allow-root: root and the mount's owner get in,
// anybody else is refused.
func TestAllowRoot(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	w := newWorkspace(t)
	w.putObject(t, "open.txt", []byte("open to all by its mode\n"), nil)
	m := mountWS(t, w, mountOpts{extra: []string{"--allow-root"}})
	if _, err := os.ReadFile(m.path("open.txt")); err != nil {
		t.Errorf("root: %v", err)
	}
	if out, err := asUser(t, nobody, "/", "cat "+m.path("open.txt")); err == nil || !strings.Contains(out, "ermission denied") {
		t.Errorf("as nobody with --allow-root: got %v %q, want permission denied", err, out)
	}
}

// TestSetGroupIDDirectory checks that what is created in a set-group-ID
// directory takes the directory's group, and a new directory the bit.
func TestSetGroupIDDirectory(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	w := newWorkspace(t)
	m := mountWS(t, w, mountOpts{extra: []string{"--allow-other"}})
	if err := os.Mkdir(m.path("team"), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(m.path("team"), 0, 4242); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(m.path("team"), os.ModeSetgid|0o777); err != nil {
		t.Fatal(err)
	}
	if out, err := asUser(t, nobody, m.dir, "echo x > team/f && mkdir team/d"); err != nil {
		t.Fatalf("as nobody: %v: %s", err, out)
	}
	wantStat(t, m.path("team/f"), statWant{uid: nobody, gid: 4242, owner: true})
	fi, err := os.Stat(m.path("team/d"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSetgid == 0 {
		t.Errorf("team/d: mode %v, want the set-group-ID bit inherited", fi.Mode())
	}
	w.wantMeta(t, "team/f", metaWant{uid: nobody, gid: 4242, owner: true})
}
