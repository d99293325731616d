package csidriver

import (
	"context"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"

	"mount-ws/mounttab"
)

// TestStartReportsMountsOfTheLastDriver: a driver starting where an
// earlier one left a live mount and a dead one (its mount-ws killed, as
// a container restart does) keeps the first and names the second, and
// the next publish of the dead target remounts it.
func TestStartReportsMountsOfTheLastDriver(t *testing.T) {
	root := t.TempDir()
	first := startDriver(t, root)
	ctx := context.Background()
	live := filepath.Join(root, "pods", "a", "mount")
	dead := filepath.Join(root, "pods", "b", "mount")
	for _, target := range []string{live, dead} {
		if _, err := first.NodePublishVolume(ctx, publishReq("csi/ws", target, nil)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			first.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: "csi/ws", TargetPath: target})
		})
	}
	st, _ := first.files("csi/ws", dead).readState()
	if err := syscall.Kill(st.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "mount-ws to die", func() bool { return exited(st.PID) })

	second := startDriver(t, root)
	logs := second.logs.String()
	if !strings.Contains(logs, "mount-ws for csi/ws at "+dead+" died with the previous driver") {
		t.Errorf("the dead mount is not reported; log:\n%s", logs)
	}
	if !strings.Contains(logs, "found a live mount") || !strings.Contains(logs, "target="+live) {
		t.Errorf("the live mount is not reported; log:\n%s", logs)
	}
	// kubelet's republish (same state dir in production: the hostPath).
	second.cfg.StateDir, second.cfg.TokenDir = first.cfg.StateDir, first.cfg.TokenDir
	if _, err := second.NodePublishVolume(ctx, publishReq("csi/ws", dead, nil)); err != nil {
		t.Fatalf("republish of the dead target: %v", err)
	}
	if mounttab.IsDead(dead) {
		t.Error("still dead after the republish")
	}
}
