package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"

	"mount-ws/mounttab"
)

// checkMountpoint wants an existing, empty directory. A dead mount-ws
// mount there, which a killed mount-ws leaves behind ("Transport endpoint
// is not connected"), is detached first, with one line on stderr saying
// so. Nothing else is ever unmounted: a live mount, or a dead mount of
// another filesystem, fails here as before.
func checkMountpoint(path string, stderr io.Writer) error {
	if err := detachDeadMounts(path, stderr); err != nil {
		return err
	}
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return mountError{fmt.Errorf("mountpoint %s does not exist: create it with mkdir -p %s", path, path)}
	}
	if err != nil {
		return mountError{fmt.Errorf("mountpoint %s: %w (is a stale mount there? try fusermount3 -u %s)", path, err, path)}
	}
	if !fi.IsDir() {
		return mountError{fmt.Errorf("mountpoint %s is not a directory", path)}
	}
	f, err := os.Open(path)
	if err != nil {
		return mountError{fmt.Errorf("mountpoint %s: %w", path, err)}
	}
	defer f.Close()
	if names, _ := f.Readdirnames(1); len(names) > 0 {
		return mountError{fmt.Errorf("mountpoint %s is not empty (is something mounted there already?)", path)}
	}
	return nil
}

// maxDeadMounts bounds how many dead mounts stacked on one mountpoint
// detachDeadMounts removes (each kill -9 and restart with an older
// mount-ws could have left one).
const maxDeadMounts = 8

// detachDeadMounts lazily unmounts the mount at path while it is a FUSE
// mount of mount-ws whose process is gone, saying so on stderr once per
// mount. It does nothing, and returns nil, when path is no mountpoint,
// when /proc/self/mountinfo cannot be read, when the mount there belongs
// to another filesystem, or when it answers; it fails only when a dead
// mount-ws mount cannot be detached.
func detachDeadMounts(path string, stderr io.Writer) error {
	target := mounttab.Canonical(path)
	for range maxDeadMounts {
		entries, err := mounttab.Read()
		if err != nil {
			return nil
		}
		m, ok := mounttab.Top(entries, target)
		if !ok || !m.IsMountWS() || !mounttab.IsDead(path) {
			return nil
		}
		if err := detach(path); err != nil {
			return mountError{fmt.Errorf("mountpoint %s holds a dead mount-ws mount that could not be detached: %w (try umount -l %s or fusermount3 -uz %s)", path, err, path, path)}
		}
		fmt.Fprintf(stderr, "mount-ws: found a dead mount-ws mount at %s (its mount-ws was killed?) and detached it\n", path)
	}
	return nil
}

// detach lazily unmounts path: directly as root, else with fusermount3,
// which lets a user unmount their own FUSE mounts.
func detach(path string) error {
	if os.Geteuid() == 0 {
		return syscall.Unmount(path, syscall.MNT_DETACH)
	}
	out, err := exec.Command("fusermount3", "-u", "-z", path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("fusermount3 -uz: %s: %w", bytes.TrimSpace(out), err)
	}
	return nil
}
