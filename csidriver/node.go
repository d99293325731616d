package csidriver

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"mount-ws/mounttab"
)

var _ csi.NodeServer = (*Driver)(nil)

// NodeGetInfo names the node; mount-ws volumes have no topology and no
// volume limit.
func (d *Driver) NodeGetInfo(context.Context, *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	return &csi.NodeGetInfoResponse{NodeId: d.cfg.NodeID}, nil
}

// NodeGetCapabilities reports VOLUME_MOUNT_GROUP only: kubelet passes
// fsGroup to NodePublishVolume instead of chowning the workspace.
func (d *Driver) NodeGetCapabilities(context.Context, *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	return &csi.NodeGetCapabilitiesResponse{Capabilities: []*csi.NodeServiceCapability{{
		Type: &csi.NodeServiceCapability_Rpc{Rpc: &csi.NodeServiceCapability_RPC{Type: csi.NodeServiceCapability_RPC_VOLUME_MOUNT_GROUP}},
	}}}, nil
}

// NodePublishVolume mounts the workspace at the target path by running
// mount-ws, or, when the same volume already answers there, only
// rewrites its token file (kubelet republishes periodically with
// requiresRepublish, to hand over a rotated token). A dead mount of the
// volume there is detached and mounted again; another mount there fails
// with AlreadyExists. Concurrent calls for one target get Aborted.
func (d *Driver) NodePublishVolume(ctx context.Context, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	switch {
	case req.GetVolumeId() == "":
		return nil, status.Error(codes.InvalidArgument, "volume id missing")
	case req.GetTargetPath() == "":
		return nil, status.Error(codes.InvalidArgument, "target path missing")
	case !filepath.IsAbs(req.GetTargetPath()):
		return nil, status.Errorf(codes.InvalidArgument, "target path %q is not absolute", req.GetTargetPath())
	case req.GetVolumeCapability() == nil:
		return nil, status.Error(codes.InvalidArgument, "volume capability missing")
	}
	v, err := parseVolume(req, d.cfg.DefaultAPIURL)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	token := req.GetSecrets()["token"]
	if token == "" {
		return nil, status.Errorf(codes.InvalidArgument, "volume %s has no token: set nodePublishSecretRef to a Secret with the workspace API token under the key \"token\"", v.id)
	}
	target := filepath.Clean(req.GetTargetPath())
	if !d.lockTarget(target) {
		return nil, status.Errorf(codes.Aborted, "an operation on %s is already in progress", target)
	}
	defer d.unlockTarget(target)

	files := d.files(v.id, target)
	args := []string{
		"--api-url=" + v.apiURL,
		"--token-file=" + files.token,
		"--cache-dir=" + files.cacheDir(),
		"--log-file=" + files.logFile(),
		"--allow-other",
	}
	if v.readOnly {
		args = append(args, "--read-only")
	}
	args = append(args, v.flags...)
	args = append(args, v.workspace, target)

	republished, err := d.checkTarget(v, target, files, args)
	if err != nil {
		return nil, err
	}
	if err := files.writeToken(token); err != nil {
		return nil, status.Errorf(codes.Internal, "write token file: %v", err)
	}
	if republished {
		d.log.Info("republished: token file rewritten, mount kept", "volume", v.id, "target", target)
		return &csi.NodePublishVolumeResponse{}, nil
	}

	if err := os.MkdirAll(target, 0o750); err != nil {
		return nil, status.Errorf(codes.Internal, "create target %s: %v", target, err)
	}
	if err := os.MkdirAll(files.cacheDir(), 0o700); err != nil {
		return nil, status.Errorf(codes.Internal, "create cache dir: %v", err)
	}
	if err := d.runMountWS(ctx, args); err != nil {
		os.Remove(files.token)
		return nil, err
	}
	st := publishState{VolumeID: v.id, Workspace: v.workspace, Target: target, Args: args, PID: findMountWS(v.workspace, target)}
	if err := files.writeState(st); err != nil {
		d.log.Warn("could not record the publish state", "volume", v.id, "target", target, "err", err)
	}
	d.log.Info("mounted", "volume", v.id, "workspace", v.workspace, "target", target, "read_only", v.readOnly, "pid", st.PID, "log", files.logFile())
	return &csi.NodePublishVolumeResponse{}, nil
}

// checkTarget looks at what is mounted at target: nothing (false), the
// same volume answering with the same options (true: republish), a dead
// mount-ws mount (detached; false), or anything else (AlreadyExists).
func (d *Driver) checkTarget(v volume, target string, files volumeFiles, args []string) (bool, error) {
	mounts, err := mounttab.Read()
	if err != nil {
		return false, status.Errorf(codes.Internal, "read mount table: %v", err)
	}
	m, ok := mounttab.Top(mounts, mounttab.Canonical(target))
	if !ok {
		return false, nil
	}
	if !m.IsMountWS() {
		return false, status.Errorf(codes.AlreadyExists, "%s is already a mount point (%s %s); it cannot take volume %s", target, m.FSType, m.Source, v.id)
	}
	if m.Workspace() != v.workspace {
		return false, status.Errorf(codes.AlreadyExists, "%s already has workspace %s mounted; it cannot take volume %s (workspace %s)", target, m.Workspace(), v.id, v.workspace)
	}
	if mounttab.IsDead(target) {
		d.log.Warn("found a dead mount at the target (its mount-ws died); detaching it and mounting again", "volume", v.id, "target", target)
		if err := syscall.Unmount(target, syscall.MNT_DETACH); err != nil {
			return false, status.Errorf(codes.Internal, "detach the dead mount at %s: %v", target, err)
		}
		return false, nil
	}
	if st, err := files.readState(); err == nil && (st.VolumeID != v.id || !slices.Equal(st.Args, args)) {
		return false, status.Errorf(codes.AlreadyExists, "volume %s is already published at %s with other options; unpublish it first", v.id, target)
	}
	return true, nil
}

// NodeUnpublishVolume unmounts the target, waits (at most
// Config.UnmountWait) for its mount-ws to upload unsaved data and exit,
// then removes the target directory, the token file and the volume's
// state. A missing target is success. If mount-ws is still uploading when
// the wait ends, the call fails with DeadlineExceeded and keeps the token
// file, so the uploads can go on; kubelet's retry waits again.
func (d *Driver) NodeUnpublishVolume(ctx context.Context, req *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	switch {
	case req.GetVolumeId() == "":
		return nil, status.Error(codes.InvalidArgument, "volume id missing")
	case req.GetTargetPath() == "":
		return nil, status.Error(codes.InvalidArgument, "target path missing")
	}
	target := filepath.Clean(req.GetTargetPath())
	if !d.lockTarget(target) {
		return nil, status.Errorf(codes.Aborted, "an operation on %s is already in progress", target)
	}
	defer d.unlockTarget(target)
	files := d.files(req.GetVolumeId(), target)

	mounts, err := mounttab.Read()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "read mount table: %v", err)
	}
	workspace := ""
	if st, err := files.readState(); err == nil {
		workspace = st.Workspace
	}
	if m, ok := mounttab.Top(mounts, mounttab.Canonical(target)); ok {
		if m.IsMountWS() {
			workspace = m.Workspace()
		}
		if err := syscall.Unmount(target, 0); err != nil {
			if !mounttab.IsDead(target) {
				return nil, status.Errorf(codes.Internal, "unmount %s: %v (is a process still using it?)", target, err)
			}
			if err := syscall.Unmount(target, syscall.MNT_DETACH); err != nil {
				return nil, status.Errorf(codes.Internal, "detach the dead mount at %s: %v", target, err)
			}
		}
		d.log.Info("unmounted", "volume", req.GetVolumeId(), "target", target)
	}
	if workspace != "" {
		if pid := findMountWS(workspace, target); pid > 0 {
			wctx, cancel := context.WithTimeout(ctx, d.cfg.UnmountWait)
			ok := waitExit(wctx, pid)
			cancel()
			if !ok {
				return nil, status.Errorf(codes.DeadlineExceeded, "mount-ws (pid %d) for %s is still uploading unsaved data after the unmount; see %s", pid, target, files.logFile())
			}
		}
	}
	if err := os.Remove(target); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, status.Errorf(codes.Internal, "remove target %s: %v", target, err)
	}
	if err := os.Remove(files.token); err != nil && !errors.Is(err, os.ErrNotExist) {
		d.log.Warn("could not remove the token file", "path", files.token, "err", err)
	}
	d.removeState(files)
	return &csi.NodeUnpublishVolumeResponse{}, nil
}

// removeState removes a volume's state directory unless its cache still
// holds files: those are data mount-ws could not upload, kept for a
// person to recover.
func (d *Driver) removeState(files volumeFiles) {
	if left := countFiles(files.cacheDir()); left > 0 {
		d.log.Warn("mount-ws left files in its cache (data it could not upload?); keeping them", "dir", files.dir, "files", left)
		os.Remove(files.stateFile())
		return
	}
	if err := os.RemoveAll(files.dir); err != nil {
		d.log.Warn("could not remove the volume's state", "dir", files.dir, "err", err)
	}
}

// countFiles counts the regular files under dir.
func countFiles(dir string) int {
	n := 0
	filepath.WalkDir(dir, func(_ string, e os.DirEntry, err error) error {
		if err == nil && e.Type().IsRegular() {
			n++
		}
		return nil
	})
	return n
}
