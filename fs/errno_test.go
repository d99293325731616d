package fs

import (
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"net"
	"os"
	"syscall"
	"testing"

	"mount-ws/bucket"
	"mount-ws/vfs"
)

// TestClassify is the errno each kind of failure reaches the application
// as (README, "What you see" and "Writing").
func TestClassify(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	for _, c := range []struct {
		name string
		err  error
		want syscall.Errno
	}{
		{"missing object", fmt.Errorf("head a: %w", iofs.ErrNotExist), syscall.ENOENT},
		{"access denied by S3", fmt.Errorf("get a: %w", iofs.ErrPermission), syscall.EACCES},
		{"object changed under a read", fmt.Errorf("get a: %w", bucket.ErrPrecondition), syscall.ESTALE},
		{"key too long", fmt.Errorf("put a: %w", bucket.ErrKeyTooLong), syscall.ENAMETOOLONG},
		{"rename over an existing name, RENAME_NOREPLACE", vfs.ErrExists, syscall.EEXIST},
		{"rename of a directory over a file", vfs.ErrNotDir, syscall.ENOTDIR},
		{"rename of a file over a directory", vfs.ErrIsDir, syscall.EISDIR},
		{"rmdir of a directory holding something", fmt.Errorf("rmdir a: %w", vfs.ErrNotEmpty), syscall.ENOTEMPTY},
		{"staging cache full", fmt.Errorf("staging cache full: %w", syscall.ENOSPC), syscall.ENOSPC},
		{"file too big", syscall.EFBIG, syscall.EFBIG},
		{"signal during a read", fmt.Errorf("get a: %w", context.Canceled), syscall.EINTR},
		{"throttled through every retry", fmt.Errorf("get a: %w", bucket.ErrThrottled), syscall.EIO},
		{"anything else", errors.New("internal error"), syscall.EIO},
		// Network errnos are the file's I/O errors, not the caller's.
		{"storage unreachable", fmt.Errorf("get a: %w", refused), syscall.EIO},
		{"credentials expired, API unreachable", fmt.Errorf("get a: %w: %w", bucket.ErrCredentials, refused), syscall.EIO},
		{"credentials wait ended by a signal", fmt.Errorf("get a: %w: %w", bucket.ErrCredentials, context.Canceled), syscall.EINTR},
	} {
		if got := classify(c.err); got != c.want {
			t.Errorf("%s: %v → %v, want %v", c.name, c.err, got, c.want)
		}
	}
}
