package main

import (
	"errors"
	"fmt"
	"os"
)

// checkMountpoint wants an existing, empty directory.
func checkMountpoint(path string) error {
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
