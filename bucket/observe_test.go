package bucket_test

import (
	"bytes"
	"errors"
	"io"
	iofs "io/fs"
	"strings"
	"sync"
	"testing"
	"time"

	"mount-ws/bucket"
	"mount-ws/internal/wsstack"
)

// observations records what a Bucket reports to its Observer.
type observations struct {
	mu             sync.Mutex
	attempts       map[string]int // "op outcome"
	sent, received int64
}

func (o *observations) Request(op, outcome string, elapsed time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if elapsed <= 0 {
		op += " (no time)"
	}
	o.attempts[op+" "+outcome]++
}

func (o *observations) Transferred(sent, received int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.sent += sent
	o.received += received
}

func (o *observations) snapshot() (map[string]int, int64, int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	m := make(map[string]int, len(o.attempts))
	for k, v := range o.attempts {
		m[k] = v
	}
	return m, o.sent, o.received
}

// TestObserver checks that every attempt is reported with its operation
// and outcome (retries included), and that body bytes are counted both
// ways.
func TestObserver(t *testing.T) {
	ctx := ctxFor(t)
	obs := &observations{attempts: map[string]int{}}
	b := newGateway(t, func(c *bucket.Config) {
		c.Observer = obs
		c.Retryer = fastRetryer(3)
	})
	data := bytes.Repeat([]byte("observe "), 128<<10) // 1 MiB
	if _, err := b.Put(ctx, "observed", bytes.NewReader(data), int64(len(data)), bucket.Meta{}); err != nil {
		t.Fatal(err)
	}
	rc, err := b.Get(ctx, "observed", 0, -1, "")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, data) {
		t.Fatal("read back differs")
	}
	if _, err := b.Head(ctx, "not-there"); !errors.Is(err, iofs.ErrNotExist) {
		t.Fatalf("head of a missing key: %v", err)
	}
	t.Cleanup(stack.S3.ClearFaults)
	stack.S3.Inject(wsstack.S3Fault{Ops: []wsstack.Op{wsstack.OpHead}, KeyContains: "observed", Status: 503, Times: 1})
	if _, err := b.Head(ctx, "observed"); err != nil {
		t.Fatalf("head after one SlowDown: %v", err)
	}
	stack.S3.Inject(wsstack.S3Fault{Ops: []wsstack.Op{wsstack.OpGet}, KeyContains: "observed", Status: 403, Times: 1})
	if _, err := b.Get(ctx, "observed", 0, -1, ""); !errors.Is(err, iofs.ErrPermission) {
		t.Fatalf("get refused: %v", err)
	}

	attempts, sent, received := obs.snapshot()
	want := map[string]int{
		"PutObject ok":         1,
		"GetObject ok":         1,
		"HeadObject not_found": 1,
		"HeadObject throttled": 1,
		"HeadObject ok":        1,
		"GetObject denied":     1,
	}
	for k, n := range want {
		if attempts[k] != n {
			t.Errorf("%q reported %d times, want %d (all: %v)", k, attempts[k], n, attempts)
		}
	}
	for k := range attempts {
		if strings.Contains(k, "no time") {
			t.Errorf("%q reported without a duration", k)
		}
	}
	if sent < int64(len(data)) || sent > int64(len(data))+4096 {
		t.Errorf("sent %d body bytes, want about %d", sent, len(data))
	}
	if received < int64(len(data)) {
		t.Errorf("received %d body bytes, want at least %d", received, len(data))
	}
}
