package fs

import (
	"context"
	"log/slog"
	"maps"
	"time"
)

// retryLater queues a file with unsaved data: its upload failed (failed;
// close or fsync reported EIO), or a change was still being saved when its
// last handle went. The data is never dropped: it is uploaded again every
// Options.RetryInterval until that succeeds or the file is deleted, and once more
// when the filesystem is closed.
//
// A failed upload is queued at once, not when the kernel releases the
// handle: the kernel may never send that release if the filesystem is
// unmounted right after the failed close.
func (f *FS) retryLater(n *file, failed bool) {
	f.retryMu.Lock()
	defer f.retryMu.Unlock()
	if f.pending == nil {
		f.pending = make(map[*file]bool)
	}
	was, queued := f.pending[n]
	f.pending[n] = failed || was
	if f.retryStop == nil && !f.closed {
		f.retryStop = make(chan struct{})
		f.retryDone = make(chan struct{})
		go f.retryLoop(f.retryStop, f.retryDone)
	}
	switch {
	case queued && (was || !failed):
		// Known already, and said so.
	case failed:
		n.mu.Lock()
		cause := n.lastErr
		n.mu.Unlock()
		f.log.Error("upload failed; keeping the data and retrying in the background",
			slog.String("path", n.lastKeyNow()), slog.Any("err", cause))
	default:
		f.log.Debug("a change is still being saved; checking again later", slog.String("path", n.lastKeyNow()))
	}
}

// unqueue takes a file that was just saved off the retry queue.
func (f *FS) unqueue(n *file) {
	f.retryMu.Lock()
	defer f.retryMu.Unlock()
	delete(f.pending, n)
}

func (f *FS) retryLoop(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(f.opts.RetryInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			f.retryPending(context.Background())
		}
	}
}

// queued returns a copy of the retry queue (true: the upload failed), to
// go over without holding retryMu across uploads.
func (f *FS) queued() map[*file]bool {
	f.retryMu.Lock()
	defer f.retryMu.Unlock()
	return maps.Clone(f.pending)
}

// retryPending tries every queued file once.
func (f *FS) retryPending(ctx context.Context) {
	for n, failed := range f.queued() {
		if n.writerOpen() {
			continue // still being written: its close saves it
		}
		if err := n.save(ctx); err != nil {
			continue
		}
		f.unqueue(n) // also when there was nothing left to save
		if failed {
			key, _ := n.saveKey()
			f.log.Info("upload retried successfully", slog.String("path", key))
		}
		n.mu.Lock()
		st := n.st
		idle := n.handles == 0 && st != nil && !st.dirty && !n.metaDirty
		if idle {
			n.st = nil
		}
		n.mu.Unlock()
		if idle {
			n.io.Lock()
			f.dropStaging(st)
			n.io.Unlock()
		}
	}
}

// Close stops the background retries after one last attempt, and reports
// how many files still hold unsaved data.
func (f *FS) Close(ctx context.Context) int {
	f.retryMu.Lock()
	stop, done := f.retryStop, f.retryDone
	f.retryStop, f.closed = nil, true
	f.retryMu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
	f.retryPending(ctx)
	f.retryMu.Lock()
	defer f.retryMu.Unlock()
	for n := range f.pending {
		key, _ := n.saveKey()
		n.mu.Lock()
		cause := n.lastErr
		n.mu.Unlock()
		f.log.Error("unsaved data lost at unmount: the upload kept failing", slog.String("path", key), slog.Any("err", cause))
	}
	return len(f.pending)
}
