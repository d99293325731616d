// Package devcmd holds what the development commands that run mount-ws on
// a local workspace (ws-bench, ws-soak) share: finding the mount-ws binary,
// and the data dir of a run.
package devcmd

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
)

// FindMountWS returns the mount-ws binary: flagPath if set, else the one
// next to the running command, else the one on $PATH.
func FindMountWS(flagPath string) (string, error) {
	if flagPath != "" {
		return flagPath, nil
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "mount-ws")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath("mount-ws")
	if err != nil {
		return "", errors.New("mount-ws not found: build it (make build) or pass -mount-ws")
	}
	return filepath.Abs(p)
}

// DataDir returns the data dir of a run and how to clean it up. dir, when
// set, is created if needed and kept. Otherwise a temporary dir named
// after prefix is made under /tmp, and cleanup removes it unless keep (it
// then prints where it is) — but never while mounted reports one of the
// directories under its mnt/ as a mount point.
func DataDir(dir, prefix string, keep bool, stderr io.Writer, mounted func(string) bool) (string, func() error, error) {
	if dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", nil, fmt.Errorf("data dir: %w", err)
		}
		return dir, func() error { return nil }, nil
	}
	dir, err := os.MkdirTemp("/tmp", prefix)
	if err != nil {
		return "", nil, fmt.Errorf("data dir: %w", err)
	}
	return dir, func() error {
		if keep {
			fmt.Fprintf(stderr, "Data kept in %s (use -data %s to reuse it).\n", dir, dir)
			return nil
		}
		mnt := filepath.Join(dir, "mnt")
		entries, _ := os.ReadDir(mnt)
		for _, e := range entries {
			if p := filepath.Join(mnt, e.Name()); mounted(p) {
				return fmt.Errorf("%s is still mounted; not removing %s", p, dir)
			}
		}
		if mounted(mnt) {
			return fmt.Errorf("%s is still mounted; not removing %s", mnt, dir)
		}
		return os.RemoveAll(dir)
	}, nil
}
