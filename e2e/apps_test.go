package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// git runs git in dir with no system or user configuration, failing the
// test with its output if it fails.
func git(t *testing.T, home, dir string, args ...string) string {
	t.Helper()
	args = append([]string{"-c", "user.name=E2E Test", "-c", "user.email=e2e@example.com", "-c", "init.defaultBranch=main"}, args...)
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+home, "XDG_CONFIG_HOME="+home, "GIT_CONFIG_GLOBAL=/dev/null", "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s (in %s): %v\n%s", strings.Join(args[6:], " "), dir, err, out)
	}
	return string(out)
}

func TestGit(t *testing.T) {
	t.Parallel()
	requireTool(t, "git")
	ws := newWorkspace(t)
	home := t.TempDir()
	cacheDir := t.TempDir()
	m := mountWS(t, ws, mountOpts{cacheDir: cacheDir})
	repo := m.path("repo")
	if err := os.Mkdir(repo, 0o755); err != nil {
		t.Fatalf("mkdir repo: %v", err)
	}
	git(t, home, repo, "init")
	files := map[string]string{
		"README.md":        "# notebook\n",
		"src/train.py":     "print('training')\n",
		"config/conf.yaml": "lr: 0.1\n",
	}
	for rel, c := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(repo, rel)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(repo, rel), []byte(c), 0o644); err != nil {
			t.Fatalf("write %s: %v", rel, err)
		}
	}
	if err := os.Chmod(filepath.Join(repo, "src/train.py"), 0o755); err != nil {
		t.Fatal(err)
	}
	git(t, home, repo, "add", ".")
	git(t, home, repo, "commit", "-q", "-m", "first")
	if err := os.WriteFile(filepath.Join(repo, "config/conf.yaml"), []byte("lr: 0.01\n"), 0o644); err != nil {
		t.Fatalf("edit conf.yaml: %v", err)
	}
	git(t, home, repo, "commit", "-q", "-a", "-m", "second")

	check := func(t *testing.T, repo string) {
		t.Helper()
		if log := git(t, home, repo, "log", "--format=%s"); log != "second\nfirst\n" {
			t.Errorf("git log: %q, want \"second\\nfirst\\n\"", log)
		}
		if st := git(t, home, repo, "status", "--porcelain"); st != "" {
			t.Errorf("git status --porcelain: %q, want a clean tree", st)
		}
		git(t, home, repo, "fsck", "--full", "--strict")
		if show := git(t, home, repo, "show", "HEAD:config/conf.yaml"); show != "lr: 0.01\n" {
			t.Errorf("git show HEAD:config/conf.yaml: %q", show)
		}
	}
	t.Run("same mount", func(t *testing.T) { check(t, repo) })
	ws.wantObject(t, "repo/config/conf.yaml", []byte("lr: 0.01\n"))
	// 2 commits, 5 trees and 4 blobs, as loose objects.
	if keys := ws.listKeys(t, "repo/.git/objects/"); len(keys) < 11 {
		t.Errorf("bucket: %d keys under %s, want at least the 11 loose objects: %q", len(keys), ws.key("repo/.git/objects/"), keys)
	}
	m = m.remount(t, mountOpts{cacheDir: cacheDir})
	t.Run("fresh mount", func(t *testing.T) { check(t, m.path("repo")) })
}

// TestSQLite keeps a small SQLite database in the mount, as MLflow or
// Optuna do: journal files, locks within this machine, fsync, pwrite.
func TestSQLite(t *testing.T) {
	t.Parallel()
	requireTool(t, "python3")
	ws := newWorkspace(t)
	cacheDir := t.TempDir()
	m := mountWS(t, ws, mountOpts{cacheDir: cacheDir})
	script := `
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
if sys.argv[2] == "write":
    db.execute("create table runs (id integer primary key, loss real, note text)")
    for i in range(200):
        with db:
            db.execute("insert into runs (loss, note) values (?, ?)", (1.0 / (i + 1), "x" * (i * 10)))
    with db:
        db.execute("update runs set note = 'best' where id = 200")
print(db.execute("select count(*), min(loss), (select note from runs where id = 200) from runs").fetchone())
print(db.execute("pragma integrity_check").fetchone()[0])
db.close()
`
	sqlite := func(t *testing.T, dir, mode string) string {
		t.Helper()
		cmd := exec.Command("python3", "-c", script, filepath.Join(dir, "runs.db"), mode)
		cmd.Dir = "/"
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("python3 sqlite3 (%s): %v\n%s", mode, err, out)
		}
		return string(out)
	}
	const want = "(200, 0.005, 'best')\nok\n"
	if got := sqlite(t, m.dir, "write"); got != want {
		t.Errorf("sqlite after 200 transactions: %q, want %q", got, want)
	}
	if journal := ws.listKeys(t, "runs.db-"); len(journal) > 0 {
		t.Errorf("bucket: journal files left behind: %q", journal)
	}
	m = m.remount(t, mountOpts{cacheDir: cacheDir})
	if got := sqlite(t, m.dir, "read"); got != want {
		t.Errorf("sqlite from a fresh mount: %q, want %q", got, want)
	}
}
