package creds

import (
	"context"
	"time"
)

// A Clock tells the wall-clock time and sleeps. The package reads the time
// only through it, so tests can move time (for example past an expiration,
// as a suspended machine would) and skip sleeps.
type Clock interface {
	// Now returns the current wall-clock time.
	Now() time.Time
	// Sleep waits for d, or until ctx is done (returning ctx.Err()).
	Sleep(ctx context.Context, d time.Duration) error
}

// systemClock is the real clock. Now strips the monotonic reading, so every
// comparison with an expiration is made on the wall clock: after a suspend,
// Go's monotonic clock may not have advanced, but the credentials have expired.
type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now().Round(0) }

func (systemClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
