package csidriver

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"mount-ws/mounttab"
)

// cli runs a client subcommand of mount-ws-csi and returns its output.
func cli(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := Run(context.Background(), args, &out, &out, "test")
	return out.String(), err
}

func TestPublishWriteReadUnpublish(t *testing.T) {
	root := t.TempDir()
	d := startDriver(t, root)
	target := filepath.Join(root, "pods", "p1", "volumes", "mount")
	tok := tokenFile(t, testToken)

	if out, err := cli(t, "publish", "--endpoint", d.endpoint, "--volume", "csi/ws", "--target", target, "--token-file", tok); err != nil {
		t.Fatalf("publish: %v %s", err, out)
	}
	if !isMounted(t, target) {
		t.Fatal("nothing mounted at the target after publish")
	}
	files := d.files("csi/ws", target)
	if fi, err := os.Stat(files.token); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("token file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	checkNoTokenInProcess(t, files)

	if err := os.WriteFile(filepath.Join(target, "hello.txt"), []byte("hello from csi\n"), 0o644); err != nil {
		t.Fatalf("write through the mount: %v", err)
	}
	ents, err := os.ReadDir(target)
	if err != nil || len(ents) == 0 {
		t.Errorf("ls target: %d entries, %v", len(ents), err)
	}
	if got, err := os.ReadFile(filepath.Join(target, "hello.txt")); err != nil || string(got) != "hello from csi\n" {
		t.Errorf("read back: %q %v", got, err)
	}

	if out, err := cli(t, "unpublish", "--endpoint", d.endpoint, "--volume", "csi/ws", "--target", target); err != nil {
		t.Fatalf("unpublish: %v %s", err, out)
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Errorf("target still there after unpublish: %v", err)
	}
	if _, err := os.Stat(files.token); !os.IsNotExist(err) {
		t.Errorf("token file still there after unpublish: %v", err)
	}
	// The file reached the bucket: a fresh mount of a second target reads it.
	other := filepath.Join(root, "pods", "p2", "mount")
	if out, err := cli(t, "publish", "--endpoint", d.endpoint, "--volume", "v2", "--attr", "workspace=csi/ws", "--attr", "metadataTTL=0", "--read-only", "--target", other, "--token-file", tok); err != nil {
		t.Fatalf("publish read-only: %v %s", err, out)
	}
	if got, err := os.ReadFile(filepath.Join(other, "hello.txt")); err != nil || string(got) != "hello from csi\n" {
		t.Errorf("read after a remount: %q %v", got, err)
	}
	if err := os.WriteFile(filepath.Join(other, "no.txt"), nil, 0o644); !errorsIs(err, syscall.EROFS) {
		t.Errorf("write on a read-only publish: %v, want EROFS", err)
	}
	if out, err := cli(t, "unpublish", "--endpoint", d.endpoint, "--volume", "v2", "--target", other); err != nil {
		t.Fatalf("unpublish: %v %s", err, out)
	}
	// Unpublishing what is gone succeeds (kubelet retries).
	if out, err := cli(t, "unpublish", "--endpoint", d.endpoint, "--volume", "v2", "--target", other); err != nil {
		t.Errorf("second unpublish: %v %s", err, out)
	}
}

// checkNoTokenInProcess fails if the token is in mount-ws's arguments,
// environment or log.
func checkNoTokenInProcess(t *testing.T, files volumeFiles) {
	t.Helper()
	st, err := files.readState()
	if err != nil || st.PID == 0 {
		t.Fatalf("no mount-ws pid recorded: %v %+v", err, st)
	}
	for _, f := range []string{"cmdline", "environ"} {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(st.PID) + "/" + f)
		if err != nil {
			t.Fatalf("read mount-ws's %s: %v", f, err)
		}
		if bytes.Contains(b, []byte(testToken)) {
			t.Errorf("the token is in mount-ws's %s", f)
		}
	}
	if b, err := os.ReadFile(files.logFile()); err != nil || bytes.Contains(b, []byte(testToken)) {
		t.Errorf("mount-ws's log: %v, or the token is in it", err)
	}
}

func errorsIs(err error, target syscall.Errno) bool {
	var errno syscall.Errno
	for err != nil {
		if e, ok := err.(syscall.Errno); ok {
			errno = e
			break
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			break
		}
		err = u.Unwrap()
	}
	return errno == target
}

func TestPublishFailuresCarryMountWSMessage(t *testing.T) {
	root := t.TempDir()
	d := startDriver(t, root)
	tests := []struct {
		name, volume, token string
		attrs               []string
		want                string // in the message
	}{
		{"bad token", "csi/ws", "wrong-token", nil, "Unauthenticated: mount-ws: "},
		{"no access", "csi/other", testToken, nil, "PermissionDenied: mount-ws: "},
		{"no such workspace", "csi/nope", testToken, nil, "NotFound: mount-ws: "},
		{"bad slug", "not-a-slug", testToken, nil, "InvalidArgument: "},
		{"unknown attribute", "csi/ws", testToken, []string{"--attr", "tokenFile=/etc/x"}, `unknown volume attribute "tokenFile"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := filepath.Join(root, tt.name)
			args := append([]string{"publish", "--endpoint", d.endpoint, "--volume", tt.volume, "--target", target, "--token-file", tokenFile(t, tt.token)}, tt.attrs...)
			_, err := cli(t, args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("publish: %v; want an error containing %q", err, tt.want)
			}
			if isMounted(t, target) {
				t.Error("mounted anyway")
			}
			if _, err := os.Stat(d.files(tt.volume, target).token); !os.IsNotExist(err) {
				t.Errorf("a failed publish left its token file: %v", err)
			}
		})
	}
}

// publishReq is a NodePublishVolume request as kubelet sends it.
func publishReq(volume, target string, attrs map[string]string) *csi.NodePublishVolumeRequest {
	return &csi.NodePublishVolumeRequest{
		VolumeId:   volume,
		TargetPath: target,
		VolumeCapability: &csi.VolumeCapability{
			AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
			AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
		},
		VolumeContext: attrs,
		Secrets:       map[string]string{"token": testToken},
	}
}

func TestPublishIdempotency(t *testing.T) {
	root := t.TempDir()
	d := startDriver(t, root)
	ctx := context.Background()
	target := filepath.Join(root, "pods", "p", "mount")
	files := d.files("csi/ws", target)
	t.Cleanup(func() {
		d.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: "csi/ws", TargetPath: target})
	})

	if _, err := d.NodePublishVolume(ctx, publishReq("csi/ws", target, nil)); err != nil {
		t.Fatal(err)
	}
	first, _ := files.readState()

	t.Run("republish keeps the mount and rewrites the token", func(t *testing.T) {
		os.WriteFile(files.token, []byte("stale\n"), 0o600)
		if _, err := d.NodePublishVolume(ctx, publishReq("csi/ws", target, nil)); err != nil {
			t.Fatal(err)
		}
		if st, _ := files.readState(); st.PID != first.PID || exited(first.PID) {
			t.Errorf("republish started another mount-ws: pid %d, was %d", st.PID, first.PID)
		}
		if b, _ := os.ReadFile(files.token); strings.TrimSpace(string(b)) != testToken {
			t.Error("republish did not rewrite the token file")
		}
	})
	t.Run("another workspace on the busy target", func(t *testing.T) {
		_, err := d.NodePublishVolume(ctx, publishReq("csi/two", target, nil))
		if status.Code(err) != codes.AlreadyExists || !strings.Contains(err.Error(), "csi/ws") {
			t.Errorf("got %v, want AlreadyExists naming csi/ws", err)
		}
	})
	t.Run("same volume, other options", func(t *testing.T) {
		_, err := d.NodePublishVolume(ctx, publishReq("csi/ws", target, map[string]string{"uid": "1234"}))
		if status.Code(err) != codes.AlreadyExists {
			t.Errorf("got %v, want AlreadyExists", err)
		}
	})
	t.Run("a dead mount is remounted", func(t *testing.T) {
		if err := syscall.Kill(first.PID, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "mount-ws to die", func() bool { return exited(first.PID) })
		if !mounttab.IsDead(target) {
			t.Fatal("the mount still answers after kill -9")
		}
		if _, err := d.NodePublishVolume(ctx, publishReq("csi/ws", target, nil)); err != nil {
			t.Fatal(err)
		}
		if _, err := os.ReadDir(target); err != nil {
			t.Errorf("ls after the remount: %v", err)
		}
		if st, _ := files.readState(); st.PID == first.PID || st.PID == 0 {
			t.Errorf("pid after the remount %d, want a new one", st.PID)
		}
	})
	t.Run("concurrent calls for one target", func(t *testing.T) {
		if !d.lockTarget(target) {
			t.Fatal("target locked already")
		}
		defer d.unlockTarget(target)
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() {
				_, err := d.NodePublishVolume(ctx, publishReq("csi/ws", target, nil))
				if status.Code(err) != codes.Aborted {
					t.Errorf("publish during another call: %v, want Aborted", err)
				}
			})
		}
		wg.Wait()
		if _, err := d.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: "csi/ws", TargetPath: target}); status.Code(err) != codes.Aborted {
			t.Errorf("unpublish during another call: %v, want Aborted", err)
		}
	})
	t.Run("unpublish twice", func(t *testing.T) {
		for i := range 2 {
			if _, err := d.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: "csi/ws", TargetPath: target}); err != nil {
				t.Errorf("unpublish %d: %v", i+1, err)
			}
		}
		if isMounted(t, target) {
			t.Error("still mounted")
		}
	})
}

func TestPublishWithoutToken(t *testing.T) {
	d := startDriver(t, t.TempDir())
	req := publishReq("csi/ws", filepath.Join(t.TempDir(), "t"), nil)
	req.Secrets = nil
	_, err := d.NodePublishVolume(context.Background(), req)
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "nodePublishSecretRef") {
		t.Errorf("got %v, want InvalidArgument naming nodePublishSecretRef", err)
	}
}
