package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestSecretsNeverWritten checks the promise that no secret reaches a log
// or a file mount-ws writes: with every log on (--log-level debug,
// --debug-fuse) and credentials renewed on schedule and after a
// revocation, neither the API token nor any secret key or session token
// the stack minted appears in the log or the cache directory.
func TestSecretsNeverWritten(t *testing.T) {
	env.stack.API.SetTTL(3 * time.Second) // a scheduled refresh within the test
	t.Cleanup(func() { env.stack.API.SetTTL(time.Hour) })
	ws := newWorkspace(t)
	cache := t.TempDir()
	m := mountWS(t, ws, mountOpts{cacheDir: cache, extra: []string{"--debug-fuse"}})

	data := bytes.Repeat([]byte("not a secret\n"), 1000)
	io := func(i int) {
		t.Helper()
		p := m.path("f.txt")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read %d: %v", i, err)
		}
	}
	start := env.stack.API.Stats().Minted
	deadline := time.Now().Add(time.Minute)
	for i := 0; env.stack.API.Stats().Minted < start+2; i++ {
		if time.Now().After(deadline) {
			t.Fatal("no scheduled credential refresh within a minute of 3 s credentials")
		}
		io(i)
		time.Sleep(100 * time.Millisecond) // pacing the I/O, not synchronising
	}
	// A revocation: storage rejects the held credentials, and mount-ws
	// fetches new ones while the request waits.
	env.stack.RevokeWorkspace(ws.org, ws.name)
	io(-1)
	m.unmount(t)

	log, err := os.ReadFile(m.logPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(log, []byte("storage rejected the credentials")) {
		t.Error("the revocation did not show in the log: the test did not exercise a reactive refresh")
	}
	wantNoSecrets(t, "mount-ws's log", string(log), ws.token)
	filepath.WalkDir(cache, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Errorf("read %s: %v", p, err)
			return nil
		}
		wantNoSecrets(t, "the cache file "+p, string(b), ws.token)
		return nil
	})
}
