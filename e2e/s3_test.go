package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"mount-ws/internal/detdata"
)

// What is in the bucket is checked with the root account, straight to the
// gateway: no injected faults, no counting, no caching by mount-ws.

// getObject returns the bytes under rel, or ok=false when there is no such
// object.
func (w *workspace) getObject(t *testing.T, rel string) (body []byte, ok bool) {
	t.Helper()
	out, err := env.stack.RootClient().GetObject(context.Background(), &s3.GetObjectInput{Bucket: &env.bucket, Key: aws.String(w.key(rel))})
	if isNotFound(err) {
		return nil, false
	}
	if err != nil {
		t.Fatalf("SDK GET %s: %v", w.key(rel), err)
	}
	defer out.Body.Close()
	body, err = io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("SDK GET %s: read body: %v", w.key(rel), err)
	}
	return body, true
}

// wantObject checks that the object under rel holds exactly want.
func (w *workspace) wantObject(t *testing.T, rel string, want []byte) {
	t.Helper()
	got, ok := w.getObject(t, rel)
	if !ok {
		t.Errorf("bucket: no object %s, want one of %d bytes", w.key(rel), len(want))
		return
	}
	if d := diffBytes(got, want); d != "" {
		t.Errorf("bucket: object %s: %s", w.key(rel), d)
	}
}

// wantNoObject checks that there is no object under rel.
func (w *workspace) wantNoObject(t *testing.T, rel string) {
	t.Helper()
	if got, ok := w.getObject(t, rel); ok {
		t.Errorf("bucket: object %s exists (%d bytes), want none", w.key(rel), len(got))
	}
}

// wantDetdata streams the object under rel through detdata.Verify.
func (w *workspace) wantDetdata(t *testing.T, rel string, seed uint64, size int64) {
	t.Helper()
	out, err := env.stack.RootClient().GetObject(context.Background(), &s3.GetObjectInput{Bucket: &env.bucket, Key: aws.String(w.key(rel))})
	if isNotFound(err) {
		t.Errorf("bucket: no object %s, want %d bytes of detdata seed %d", w.key(rel), size, seed)
		return
	}
	if err != nil {
		t.Fatalf("SDK GET %s: %v", w.key(rel), err)
	}
	defer out.Body.Close()
	if err := detdata.Verify(out.Body, seed, size); err != nil {
		t.Errorf("bucket: object %s (%d bytes) is not detdata(seed %d, %d bytes): %v", w.key(rel), aws.ToInt64(out.ContentLength), seed, size, err)
	}
}

// head returns the object's HEAD answer, or nil when it does not exist.
func (w *workspace) head(t *testing.T, rel string) *s3.HeadObjectOutput {
	t.Helper()
	out, err := env.stack.RootClient().HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: &env.bucket, Key: aws.String(w.key(rel))})
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatalf("SDK HEAD %s: %v", w.key(rel), err)
	}
	return out
}

// putObject writes an object under rel with the root account, as another
// client (or s3fs) would.
func (w *workspace) putObject(t *testing.T, rel string, body []byte, meta map[string]string) {
	t.Helper()
	_, err := env.stack.RootClient().PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: &env.bucket, Key: aws.String(w.key(rel)), Body: bytes.NewReader(body), Metadata: meta,
	})
	if err != nil {
		t.Fatalf("SDK PUT %s: %v", w.key(rel), err)
	}
}

// listKeys lists every key under the workspace prefix + rel, relative to
// the workspace, sorted.
func (w *workspace) listKeys(t *testing.T, rel string) []string {
	t.Helper()
	var keys []string
	p := s3.NewListObjectsV2Paginator(env.stack.RootClient(), &s3.ListObjectsV2Input{Bucket: &env.bucket, Prefix: aws.String(w.key(rel))})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatalf("SDK LIST %s: %v", w.key(rel), err)
		}
		for _, o := range page.Contents {
			keys = append(keys, strings.TrimPrefix(aws.ToString(o.Key), w.prefix))
		}
	}
	sort.Strings(keys)
	return keys
}

// incompleteUploads lists the incomplete multipart uploads of rel's key
// (the root account may list a bucket's uploads; workspace credentials
// may not).
func (w *workspace) incompleteUploads(t *testing.T, rel string) []s3types.MultipartUpload {
	t.Helper()
	var ups []s3types.MultipartUpload
	in := &s3.ListMultipartUploadsInput{Bucket: &env.bucket, Prefix: aws.String(w.key(rel))}
	for {
		out, err := env.stack.RootClient().ListMultipartUploads(context.Background(), in)
		if err != nil {
			t.Fatalf("SDK list multipart uploads of %s: %v", w.key(rel), err)
		}
		for _, u := range out.Uploads {
			if aws.ToString(u.Key) == w.key(rel) {
				ups = append(ups, u)
			}
		}
		if !aws.ToBool(out.IsTruncated) {
			return ups
		}
		in.KeyMarker, in.UploadIdMarker = out.NextKeyMarker, out.NextUploadIdMarker
	}
}

func isNotFound(err error) bool {
	var nsk *s3types.NoSuchKey
	var nf *s3types.NotFound
	var apiErr smithy.APIError
	return errors.As(err, &nsk) || errors.As(err, &nf) ||
		errors.As(err, &apiErr) && (apiErr.ErrorCode() == "NotFound" || apiErr.ErrorCode() == "NoSuchKey")
}

// diffBytes describes how got differs from want, or returns "".
func diffBytes(got, want []byte) string {
	if bytes.Equal(got, want) {
		return ""
	}
	n := min(len(got), len(want))
	i := 0
	for i < n && got[i] == want[i] {
		i++
	}
	if i == n {
		return fmt.Sprintf("%d bytes, want %d (equal up to the shorter length)", len(got), len(want))
	}
	return fmt.Sprintf("%d bytes, want %d; first difference at offset %d: got %s, want %s",
		len(got), len(want), i, excerpt(got, i), excerpt(want, i))
}

// excerpt quotes up to 16 bytes of b from off.
func excerpt(b []byte, off int) string {
	return strconv.Quote(string(b[off:min(len(b), off+16)]))
}

// metaUint reads one of s3fs's decimal user metadata keys (mode, uid, gid)
// from a HEAD answer; ok is false when the key is missing or malformed.
func metaUint(h *s3.HeadObjectOutput, key string) (uint64, bool) {
	v, found := h.Metadata[key]
	if !found {
		return 0, false
	}
	n, err := strconv.ParseUint(v, 10, 32)
	return n, err == nil
}

// metaMtime parses the mtime key: decimal Unix seconds with an optional
// fractional part.
func metaMtime(h *s3.HeadObjectOutput) (sec int64, raw string, ok bool) {
	raw, found := h.Metadata["mtime"]
	if !found {
		return 0, "", false
	}
	whole, frac, _ := strings.Cut(raw, ".")
	sec, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return 0, raw, false
	}
	if _, err := strconv.ParseUint("0"+frac, 10, 64); err != nil {
		return 0, raw, false
	}
	return sec, raw, true
}

// wantErrno checks that err is one of the errnos; what names the call.
func wantErrno(t *testing.T, what string, err error, want ...syscall.Errno) {
	t.Helper()
	for _, e := range want {
		if errors.Is(err, e) {
			return
		}
	}
	names := make([]string, len(want))
	for i, e := range want {
		names[i] = errnoName(e)
	}
	got := "success"
	var en syscall.Errno
	if errors.As(err, &en) {
		got = errnoName(en) + " (" + err.Error() + ")"
	} else if err != nil {
		got = err.Error()
	}
	t.Errorf("%s: got %s, want %s", what, got, strings.Join(names, " or "))
}

func errnoName(e syscall.Errno) string {
	switch e {
	case syscall.EIO:
		return "EIO"
	case syscall.EROFS:
		return "EROFS"
	case syscall.EPERM:
		return "EPERM"
	case syscall.ENOTSUP:
		return "ENOTSUP"
	case syscall.EEXIST:
		return "EEXIST"
	case syscall.EINVAL:
		return "EINVAL"
	case syscall.ENOTEMPTY:
		return "ENOTEMPTY"
	case syscall.ENOENT:
		return "ENOENT"
	case syscall.ENOSYS:
		return "ENOSYS"
	case syscall.EACCES:
		return "EACCES"
	}
	return fmt.Sprintf("errno %d", int(e))
}
