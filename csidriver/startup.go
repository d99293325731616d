package csidriver

import (
	"path/filepath"
	"strings"

	"mount-ws/mounttab"
)

// CheckExistingMounts logs the mount-ws mounts under the kubelet
// directory that an earlier driver made: live ones are kept (their
// mount-ws survived, e.g. the driver ran outside a container), dead ones
// are reported. It changes nothing: a dead target is remounted by
// kubelet's next republish (requiresRepublish), or by the pod's restart.
func (d *Driver) CheckExistingMounts() {
	mounts, err := mounttab.Read()
	if err != nil {
		d.log.Warn("cannot read the mount table to find earlier mounts", "err", err)
		return
	}
	root := mounttab.Canonical(d.cfg.KubeletDir)
	for _, m := range mounts {
		if !m.IsMountWS() || !isUnder(m.MountPoint, root) {
			continue
		}
		if mounttab.IsDead(m.MountPoint) {
			d.log.Warn("mount-ws for "+m.Workspace()+" at "+m.MountPoint+" died with the previous driver; the pod must be restarted, or kubelet's republish will remount it",
				"workspace", m.Workspace(), "target", m.MountPoint)
			continue
		}
		d.log.Info("found a live mount from before this start; keeping it", "workspace", m.Workspace(), "target", m.MountPoint)
	}
}

func isUnder(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}
