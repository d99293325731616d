package bucket_test

import (
	"bytes"
	"context"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/aws/smithy-go/middleware"

	"mount-ws/bucket"
	"mount-ws/creds"
	"mount-ws/internal/detdata"
)

// The creds Provider and its reactive refresh work through a Bucket:
// reads keep succeeding while credentials of a 3 s lifetime are replaced,
// and when every credential of the workspace is revoked mid-read.
func TestWithCredsProvider(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for several seconds")
	}
	ctx := ctxFor(t)
	stack.API.SetTTL(3 * time.Second)
	t.Cleanup(func() { stack.API.SetTTL(time.Hour) })
	p, err := creds.NewProvider(ctx, creds.Config{
		APIURL: stack.APIURL(), Org: testOrg, Workspace: testWS,
		TokenSource: creds.StaticToken(creds.Secret(testToken), "test"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	sc := p.Scope()
	b, err := bucket.New(bucket.Config{
		Bucket: sc.Bucket, Prefix: sc.Prefix + "with-creds/", Endpoint: sc.Endpoint, Region: sc.Region,
		Credentials: p,
		APIOptions:  []func(*middleware.Stack) error{p.AddReactiveRefresh},
	})
	if err != nil {
		t.Fatal(err)
	}
	const size = 1 << 20
	obj, err := b.Put(ctx, "data.bin", detdata.New(9, size), size, bucket.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := io.ReadAll(detdata.New(9, size))

	deadline := time.Now().Add(7 * time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				off := int64((i*4099 + w*65536) % (size - 4096))
				if err := readRange(ctx, b, obj.ETag, off, want[off:off+4096]); err != nil {
					errs <- err
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	time.Sleep(3500 * time.Millisecond)
	if n := stack.RevokeWorkspace(testOrg, testWS); n == 0 {
		t.Error("nothing revoked")
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := p.Stats()
	if st.Refreshes < 3 || st.ReactiveRetries == 0 {
		t.Errorf("provider stats %+v: want several refreshes and a reactive retry after the revocation", st)
	}
	t.Logf("refreshes %d, invalidations %d, reactive retries %d", st.Refreshes, st.Invalidations, st.ReactiveRetries)
}

func readRange(ctx context.Context, b *bucket.Bucket, etag string, off int64, want []byte) error {
	rc, err := b.Get(ctx, "data.bin", off, int64(len(want)), etag)
	if err != nil {
		return err
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		return io.ErrUnexpectedEOF
	}
	return nil
}
