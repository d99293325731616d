package bucket

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"
)

// Multipart limits of S3.
const (
	minPartSize = 5 << 20
	maxPartSize = 5 << 30
	maxParts    = 10000
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
	full, err := b.keys.object(key)
	if err != nil {
		return Object{}, fmt.Errorf("upload: %w", err)
	}
	partSize := opts.PartSize
	if partSize <= 0 {
		partSize = DefaultPartSize
	}
	partSize = max(min(partSize, maxPartSize), minPartSize, ceilDiv(size, maxParts))
	cond := writeCondition{ifMatch: opts.IfMatch, ifNoneMatch: opts.IfNoneMatch}
	if size <= partSize {
		return b.put(ctx, key, io.NewSectionReader(src, 0, size), size, meta, cond)
	}
	conc := opts.Concurrency
	if conc <= 0 {
		conc = DefaultConcurrency
	}

	created, err := b.s3.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: &b.bucket, Key: &full, Metadata: meta.User, ContentType: meta.contentType(),
	})
	if err != nil {
		return Object{}, wrap("upload", key, err)
	}
	id := aws.ToString(created.UploadId)
	if opts.OnCreate != nil {
		opts.OnCreate(id)
	}

	nparts := int(ceilDiv(size, partSize))
	parts := make([]s3types.CompletedPart, nparts)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(conc)
	for i := range nparts {
		off := int64(i) * partSize
		n := min(partSize, size-off)
		g.Go(func() error {
			out, err := b.s3.UploadPart(gctx, &s3.UploadPartInput{
				Bucket:        &b.bucket,
				Key:           &full,
				UploadId:      &id,
				PartNumber:    aws.Int32(int32(i + 1)),
				Body:          newPartReader(src, off, n),
				ContentLength: aws.Int64(n),
			}, unsignedPayload)
			if err != nil {
				return fmt.Errorf("part %d: %w", i+1, err)
			}
			parts[i] = s3types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(int32(i + 1))}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return Object{}, b.abort(ctx, key, full, id, wrap("upload", key, err))
	}
	in := &s3.CompleteMultipartUploadInput{
		Bucket:          &b.bucket,
		Key:             &full,
		UploadId:        &id,
		MultipartUpload: &s3types.CompletedMultipartUpload{Parts: parts},
	}
	cond.apply(&in.IfMatch, &in.IfNoneMatch)
	done, err := b.s3.CompleteMultipartUpload(ctx, in)
	if err != nil {
		return Object{}, b.abort(ctx, key, full, id, wrap("upload", key, err))
	}
	return Object{
		Key:          key,
		Size:         size,
		ETag:         aws.ToString(done.ETag),
		LastModified: responseDate(done.ResultMetadata),
	}, nil
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
