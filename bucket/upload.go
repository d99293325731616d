package bucket

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Multipart limits of S3: every part but the last is at least MinPartSize
// (copied parts too), none is over MaxPartSize, and an upload has at most
// MaxParts parts.
const (
	MinPartSize = 5 << 20
	MaxPartSize = 5 << 30
	MaxParts    = 10000
)

// Upload defaults.
const (
	DefaultPartSize    = 16 << 20
	DefaultConcurrency = 8
)

// abortTimeout bounds the abort of a failed upload, made after the
// caller's context may already be done.
const abortTimeout = 30 * time.Second

// UploadOptions tunes Upload.
type UploadOptions struct {
	// PartSize is the size of each part but the last (default
	// DefaultPartSize; from 5 MiB to 5 GiB; raised to keep within 10,000
	// parts). An object of at most PartSize bytes is sent with one Put.
	PartSize int64
	// Concurrency is how many parts are sent at once (default
	// DefaultConcurrency).
	Concurrency int
	// OnCreate, if set, is called with the upload ID once the multipart
	// upload exists and before any part is sent, so the caller can record
	// it and abort it (AbortUpload) should the process die before Upload
	// returns. When Upload returns, the upload is complete or aborted and
	// the record can go, unless the error is an *UploadLeftError.
	OnCreate func(uploadID string)
	// IfMatch, when set to an ETag, writes only if the object under key
	// still has that ETag; IfNoneMatch "*" writes only if there is no
	// object under key. Otherwise the write fails with ErrPrecondition and
	// changes nothing. The condition is checked by the server when the
	// object is committed (PutObject or CompleteMultipartUpload), so it
	// holds against writers elsewhere too.
	IfMatch, IfNoneMatch string
}

// Upload writes size bytes of src as the object under key, with meta. Objects larger than the part size go as a multipart
// upload with parts sent in parallel (each read from src through its own
// io.SectionReader, so src must allow concurrent ReadAt, as *os.File
// does); smaller ones with Put. On failure the multipart upload is
// aborted, with a context of its own, and no object is created or
// changed.
func (b *Bucket) Upload(ctx context.Context, key string, src io.ReaderAt, size int64, meta Meta, opts UploadOptions) (Object, error) {
	partSize := PartSize(opts.PartSize, size)
	if size <= partSize {
		if _, err := b.keys.object(key); err != nil {
			return Object{}, fmt.Errorf("upload: %w", err)
		}
		cond := writeCondition{ifMatch: opts.IfMatch, ifNoneMatch: opts.IfNoneMatch}
		return b.put(ctx, key, io.NewSectionReader(src, 0, size), size, meta, cond)
	}
	s, err := b.StartStream(ctx, key, meta, opts)
	if err != nil {
		return Object{}, err
	}
	// Unlike a stream, an upload ends with the caller's request.
	defer context.AfterFunc(ctx, s.cancel)()
	parts := 0
	for off := int64(0); off < size; off += partSize {
		parts++
		s.AddPart(parts, src, off, min(partSize, size-off))
	}
	return s.Complete(ctx, parts, size, opts)
}

// PartSize is the part size a multipart upload of size bytes uses when
// asked for want: want (DefaultPartSize if 0) within S3's limits, raised
// to keep within 10,000 parts.
func PartSize(want, size int64) int64 {
	if want <= 0 {
		want = DefaultPartSize
	}
	return max(min(want, MaxPartSize), MinPartSize, ceilDiv(size, MaxParts))
}

// AbortUpload aborts the multipart upload id of key, such as one recorded
// through UploadOptions.OnCreate by a process that died. Aborting an
// upload that no longer exists (completed or already aborted) succeeds.
func (b *Bucket) AbortUpload(ctx context.Context, key, uploadID string) error {
	full, err := b.keys.object(key)
	if err != nil {
		return fmt.Errorf("abort upload: %w", err)
	}
	_, err = b.s3.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket: &b.bucket, Key: &full, UploadId: &uploadID,
	})
	if err != nil && !isNoSuchUpload(err) {
		return wrap("abort upload", key, err)
	}
	return nil
}

// UploadLeftError is returned by Upload and Copy when a multipart upload
// failed and could not be aborted either: its parts stay stored (and
// billed) until AbortUpload succeeds, so a record of the upload made in
// OnCreate must be kept. It unwraps to the error that made the upload
// fail, classified as usual.
type UploadLeftError struct {
	Key, UploadID string
	Err           error // why the upload failed
	AbortErr      error // why it could not be aborted
}

func (e *UploadLeftError) Error() string {
	return fmt.Sprintf("%v; and multipart upload %s could not be aborted: %v", e.Err, e.UploadID, e.AbortErr)
}

func (e *UploadLeftError) Unwrap() error { return e.Err }

// abort aborts a multipart upload that failed with err, on a context that
// outlives ctx's cancellation, and returns err, or an *UploadLeftError
// (logged) if the abort failed.
func (b *Bucket) abort(ctx context.Context, key, full, id string, err error) error {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	_, aerr := b.s3.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
		Bucket: &b.bucket, Key: &full, UploadId: &id,
	})
	if aerr == nil || isNoSuchUpload(aerr) {
		return err
	}
	b.log.Error("could not abort a failed multipart upload", "key", key, "upload_id", id, "err", aerr)
	return &UploadLeftError{Key: key, UploadID: id, Err: err, AbortErr: aerr}
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }
