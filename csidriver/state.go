package csidriver

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// volumeFiles are the files the driver keeps for one published target.
// Their name is derived from the volume id and the target path, so two
// targets of one volume never share a cache, a log or a token file.
type volumeFiles struct {
	dir   string // under --state-dir: state.json, mount-ws.log, cache/
	token string // under --token-dir, 0600
}

func (d *Driver) files(volumeID, target string) volumeFiles {
	name := volumeName(volumeID, target)
	return volumeFiles{
		dir:   filepath.Join(d.cfg.StateDir, "volumes", name),
		token: filepath.Join(d.cfg.TokenDir, name+".token"),
	}
}

func (f volumeFiles) cacheDir() string  { return filepath.Join(f.dir, "cache") }
func (f volumeFiles) logFile() string   { return filepath.Join(f.dir, "mount-ws.log") }
func (f volumeFiles) stateFile() string { return filepath.Join(f.dir, "state.json") }

// volumeName is a readable, file-name-safe form of the volume id (at
// most 40 bytes) and a hash of the target path.
func volumeName(volumeID, target string) string {
	safe := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '-'
	}, volumeID)
	if len(safe) > 40 {
		safe = safe[:40]
	}
	sum := sha256.Sum256([]byte(filepath.Clean(target)))
	return strings.TrimLeft(safe, ".") + "-" + hex.EncodeToString(sum[:8])
}

// publishState records how a target was published, so a republish can
// tell a compatible request from an incompatible one. It holds no secret.
type publishState struct {
	VolumeID  string   `json:"volumeID"`
	Workspace string   `json:"workspace"`
	Target    string   `json:"target"`
	Args      []string `json:"args"` // mount-ws's arguments
	PID       int      `json:"pid,omitempty"`
}

func (f volumeFiles) readState() (publishState, error) {
	var s publishState
	b, err := os.ReadFile(f.stateFile())
	if err != nil {
		return s, err
	}
	return s, json.Unmarshal(b, &s)
}

func (f volumeFiles) writeState(s publishState) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(f.stateFile(), b, 0o600)
}

// writeToken writes the token to its 0600 file, replacing it atomically
// so that a mount-ws reading it never sees it half-written.
func (f volumeFiles) writeToken(token string) error {
	return writeFileAtomic(f.token, []byte(token+"\n"), 0o600)
}

func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
