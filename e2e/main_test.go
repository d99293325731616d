// Package e2e tests the mount-ws binary end to end: it builds the binary,
// mounts fresh workspaces of a local stack (embedded S3 gateway, workspace
// API emulator, fault-injecting proxy) and checks every result through the
// S3 API, never only through the mount.
//
// The gateway runs once per process, so every test shares one stack
// (TestMain) and uses a workspace of its own. Tests that change stack-wide
// state (injected S3 faults, the credentials' TTL) do not run in parallel;
// the others do. Faults are scoped to the test's own prefix all the same.
//
// After the tests, TestMain lists the whole bucket again and fails the run
// if any object or upload outside the tests' prefixes appeared, changed or
// went away.
//
// Under -race, mount-ws is built with the race detector as well: a race in
// it makes it exit 66, and the test that met it fails with the report.
// E2E_MOUNT_WS names a prebuilt binary to test instead of building one.
// A failed test logs the tail of its mount-ws log and keeps the whole log
// in $TMPDIR/mount-ws-e2e-logs. The tests use tar, cp, dd, rsync, git and
// python3; one that is missing skips its test, or fails it when CI is set.
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"mount-ws/internal/wsstack"
)

// suite is what every test shares: one stack per process.
type suite struct {
	stack  *wsstack.Stack
	bin    string // the mount-ws binary under test
	bucket string

	mu       sync.Mutex
	prefixes []string // workspace prefixes handed to tests; guarded by mu
}

// env is the shared suite, set by TestMain before any test runs and not
// changed afterwards.
var env *suite

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "mount-ws-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)

	// Build before starting the stack: the gateway changes the process's
	// working directory, and go build needs the module's.
	bin := os.Getenv("E2E_MOUNT_WS")
	if bin == "" {
		bin = filepath.Join(tmp, "mount-ws")
		args := []string{"build", "-o", bin}
		if raceEnabled {
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, "mount-ws/cmd/mount-ws")...).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "e2e: build mount-ws: %v\n%s", err, out)
			return 1
		}
	} else if bin, err = filepath.Abs(bin); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	dataDir := filepath.Join(tmp, "s3")
	if err := os.Mkdir(dataDir, 0o700); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx := context.Background()
	// A workspace no test mounts: it creates the bucket and holds sentinels.
	stack, err := wsstack.Start(ctx, wsstack.Config{DataDir: dataDir, Workspaces: []wsstack.Workspace{{Org: "e2e", WS: "sentinel-ws"}}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: start stack:", err)
		return 1
	}
	defer stack.Close()
	env = &suite{stack: stack, bin: bin, bucket: wsstack.DefaultBucket}

	before, err := env.outsideSnapshot(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: list the bucket before the suite:", err)
		return 1
	}
	code := m.Run()
	after, err := env.outsideSnapshot(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: list the bucket after the suite:", err)
		return 1
	}
	if diff := before.diff(after, env.usedPrefixes()); len(diff) > 0 {
		fmt.Fprintf(os.Stderr, "--- FAIL: nothing written outside the workspace prefixes: %d change(s) outside %d test prefixes:\n", len(diff), len(env.usedPrefixes()))
		for _, d := range diff {
			fmt.Fprintln(os.Stderr, "    "+d)
		}
		return 1
	}
	return code
}

// sentinels are objects outside every test's prefix, put there by the root
// account before the suite, so that an overwrite or a delete outside the
// workspaces shows as a change, not only an addition. (The gateway stores
// keys as files, so no sentinel may be a prefix of another key.)
var sentinels = []string{
	"sentinel-at-bucket-root",
	"sentinel-dir/inside.txt",
	"e2e/sentinel-ws/inside.txt",
}

// bucketSnapshot is every object (key → ETag and size) and every incomplete
// multipart upload (key → count) in the bucket.
type bucketSnapshot struct {
	objects map[string]string
	uploads map[string]int
}

// outsideSnapshot puts the sentinels (first time only) and lists the whole
// bucket with the root account.
func (s *suite) outsideSnapshot(ctx context.Context) (bucketSnapshot, error) {
	root := s.stack.RootClient()
	snap := bucketSnapshot{objects: map[string]string{}, uploads: map[string]int{}}
	for _, k := range sentinels {
		if _, err := root.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: aws.String(k)}); err == nil {
			continue
		}
		if _, err := root.PutObject(ctx, &s3.PutObjectInput{Bucket: &s.bucket, Key: aws.String(k), Body: strings.NewReader("sentinel " + k)}); err != nil {
			return snap, fmt.Errorf("put sentinel %s: %w", k, err)
		}
	}
	p := s3.NewListObjectsV2Paginator(root, &s3.ListObjectsV2Input{Bucket: &s.bucket})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return snap, err
		}
		for _, o := range page.Contents {
			snap.objects[aws.ToString(o.Key)] = fmt.Sprintf("etag %s, %d bytes", aws.ToString(o.ETag), aws.ToInt64(o.Size))
		}
	}
	in := &s3.ListMultipartUploadsInput{Bucket: &s.bucket}
	for {
		out, err := root.ListMultipartUploads(ctx, in)
		if err != nil {
			return snap, fmt.Errorf("list multipart uploads: %w", err)
		}
		for _, u := range out.Uploads {
			snap.uploads[aws.ToString(u.Key)]++
		}
		if !aws.ToBool(out.IsTruncated) {
			break
		}
		in.KeyMarker, in.UploadIdMarker = out.NextKeyMarker, out.NextUploadIdMarker
	}
	return snap, nil
}

// diff lists what changed between two snapshots outside the given prefixes.
func (b bucketSnapshot) diff(after bucketSnapshot, inside []string) []string {
	outside := func(key string) bool {
		for _, p := range inside {
			if strings.HasPrefix(key, p) {
				return false
			}
		}
		return true
	}
	var d []string
	for k, v := range after.objects {
		if !outside(k) {
			continue
		}
		if old, ok := b.objects[k]; !ok {
			d = append(d, fmt.Sprintf("object %q appeared (%s)", k, v))
		} else if old != v {
			d = append(d, fmt.Sprintf("object %q changed: was %s, now %s", k, old, v))
		}
	}
	for k, v := range b.objects {
		if _, ok := after.objects[k]; !ok && outside(k) {
			d = append(d, fmt.Sprintf("object %q disappeared (was %s)", k, v))
		}
	}
	for k, n := range after.uploads {
		if outside(k) && n > b.uploads[k] {
			d = append(d, fmt.Sprintf("%d new incomplete multipart upload(s) of %q", n-b.uploads[k], k))
		}
	}
	sort.Strings(d)
	return d
}

func (s *suite) addPrefix(p string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prefixes = append(s.prefixes, p)
}

func (s *suite) usedPrefixes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.prefixes...)
}
