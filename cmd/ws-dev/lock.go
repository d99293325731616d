package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// lockFile in a data dir is held, with an exclusive flock, by the ws-dev
// serving that dir, and holds its pid. The kernel drops the lock when the
// process exits, however it exits, so a killed ws-dev leaves no stale
// claim. The file itself stays: removing it would let two servers lock two
// different files of the same name.
const lockFile = "ws-dev.lock"

// dataDirLock is a serving ws-dev's claim on its data dir.
type dataDirLock struct{ f *os.File }

// lockDataDir claims dir for this process. If another live ws-dev holds it,
// the error says which process that is and how to reach it.
func lockDataDir(dir, given string) (*dataDirLock, error) {
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, inUseError(dir, given)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	pid := []byte(strconv.Itoa(os.Getpid()) + "\n")
	err = f.Truncate(0)
	if err == nil {
		_, err = f.WriteAt(pid, 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("write lock file: %w", err)
	}
	return &dataDirLock{f: f}, nil
}

// Close gives the data dir up.
func (l *dataDirLock) Close() error { return l.f.Close() }

// inUseError describes the ws-dev holding dir, from its lock and env files.
func inUseError(dir, given string) error {
	var about []string
	if b, err := os.ReadFile(filepath.Join(dir, lockFile)); err == nil {
		if pid := strings.TrimSpace(string(b)); pid != "" {
			about = append(about, "pid "+pid)
		}
	}
	if env, err := os.ReadFile(filepath.Join(dir, envFile)); err == nil {
		for _, line := range strings.Split(string(env), "\n") {
			if u, ok := strings.CutPrefix(line, "WS_API_URL="); ok {
				about = append(about, "workspace API "+u)
			}
		}
	}
	who := "another ws-dev"
	if len(about) > 0 {
		who += " (" + strings.Join(about, ", ") + ")"
	}
	return fmt.Errorf("data dir %s is in use by %s: reach it with \"ws-dev stats -data %s\" "+
		"or \"ws-dev fault -data %s ...\" (its URLs are in %s), stop it, or give this one another -data",
		given, who, given, given, filepath.Join(dir, envFile))
}
