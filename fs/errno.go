package fs

import (
	"context"
	"errors"
	iofs "io/fs"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"mount-ws/bucket"
	"mount-ws/vfs"
)

// toErrno is the one place where errors become errno values. Expected
// outcomes (not found, and what rename and rmdir refuse) are not logged;
// anything else is logged once per operation, path and errno, so a
// failing mount does not flood its log.
func (f *FS) toErrno(op, path string, err error) syscall.Errno {
	if err == nil {
		return 0
	}
	errno := classify(err)
	switch errno {
	case syscall.ENOENT, syscall.EEXIST, syscall.ENOTDIR, syscall.EISDIR, syscall.ENOTEMPTY:
	default:
		f.logOnce(op, path, errno, err)
	}
	return errno
}

// classify maps err to the errno the application sees. An errno in err
// is passed on only if it is not about the network: a credentials or
// storage request that failed with ECONNREFUSED or ETIMEDOUT is an I/O
// error of the file, not a refused connection of the caller's own.
func classify(err error) syscall.Errno {
	var (
		errno syscall.Errno
		oerr  *net.OpError
	)
	switch {
	case errors.Is(err, bucket.ErrCredentials), errors.As(err, &oerr):
		if errors.Is(err, context.Canceled) {
			return syscall.EINTR // a signal ended the wait
		}
		return syscall.EIO
	case errors.As(err, &errno):
		return errno
	case errors.Is(err, context.Canceled):
		return syscall.EINTR
	case errors.Is(err, iofs.ErrNotExist):
		return syscall.ENOENT
	case errors.Is(err, iofs.ErrPermission):
		return syscall.EACCES
	case errors.Is(err, bucket.ErrPrecondition):
		return syscall.ESTALE
	case errors.Is(err, bucket.ErrKeyTooLong):
		return syscall.ENAMETOOLONG
	case errors.Is(err, vfs.ErrExists):
		return syscall.EEXIST
	case errors.Is(err, vfs.ErrNotDir):
		return syscall.ENOTDIR
	case errors.Is(err, vfs.ErrIsDir):
		return syscall.EISDIR
	case errors.Is(err, vfs.ErrNotEmpty):
		return syscall.ENOTEMPTY
	}
	return syscall.EIO
}

// errLog remembers which failures were logged already, and the latest
// few for `mount-ws status`. It forgets everything once it holds maxLogged
// of them, to bound its memory.
type errLog struct {
	mu     sync.Mutex
	seen   map[string]bool // guarded by mu
	recent []RecentError   // the last maxRecent failures, oldest first; guarded by mu
}

const (
	maxLogged = 10000
	maxRecent = 10
)

// RecentError is one failed operation, as Stats reports it.
type RecentError struct {
	Time     time.Time
	Op, Path string
	Errno    syscall.Errno
	Err      error
}

// remember keeps e among the recent failures.
func (l *errLog) remember(e RecentError) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.recent) == maxRecent {
		l.recent = append(l.recent[:0], l.recent[1:]...)
	}
	l.recent = append(l.recent, e)
}

// latest returns the recent failures, oldest first.
func (l *errLog) latest() []RecentError {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]RecentError(nil), l.recent...)
}

// firstTime reports whether k is seen for the first time.
func (l *errLog) firstTime(k string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == nil || len(l.seen) >= maxLogged {
		l.seen = make(map[string]bool)
	}
	dup := l.seen[k]
	l.seen[k] = true
	return !dup
}

func (f *FS) logOnce(op, path string, errno syscall.Errno, err error) {
	f.errs.remember(RecentError{Time: time.Now(), Op: op, Path: path, Errno: errno, Err: err})
	if f.errs.firstTime(op + "\x00" + path + "\x00" + errno.Error()) {
		f.log.Warn("operation failed", slog.String("op", op), slog.String("path", path),
			slog.String("errno", errno.Error()), slog.Any("err", err))
	}
}

// logSkipOnce reports a key the namespace cannot show, once per key.
func (f *FS) logSkipOnce(key, reason string) {
	if f.errs.firstTime("skip\x00" + key) {
		f.log.Warn("key not shown", slog.String("key", key), slog.String("reason", reason))
	}
}
