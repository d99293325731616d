package bucket

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"
)

// Stream is a multipart upload fed one part at a time while the data is
// still being produced, such as a file being written sequentially: the
// parts travel while the writer goes on, and only the last part and the
// completion are left when it is done. Nothing is visible under the key
// until Complete succeeds.
//
// AddPart may be called from one goroutine at a time; Complete or Abort
// ends the stream.
type Stream struct {
	b        *Bucket
	key      string
	full     string
	id       string
	g        *errgroup.Group
	gctx     context.Context
	cancel   context.CancelFunc
	mu       sync.Mutex
	parts    []s3types.CompletedPart // by part number - 1; guarded by mu
	finished bool
}

// StartStream creates the multipart upload of key with meta. opts.OnCreate is called with its upload ID; opts.Concurrency
// bounds the parts in flight (AddPart blocks beyond it). Conditions in
// opts are applied at Complete.
func (b *Bucket) StartStream(ctx context.Context, key string, meta Meta, opts UploadOptions) (*Stream, error) {
	full, err := b.keys.object(key)
	if err != nil {
		return nil, fmt.Errorf("upload: %w", err)
	}
	created, err := b.s3.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: &b.bucket, Key: &full, Metadata: meta.User, ContentType: meta.contentType(),
	})
	if err != nil {
		return nil, wrap("upload", key, err)
	}
	id := aws.ToString(created.UploadId)
	if opts.OnCreate != nil {
		opts.OnCreate(id)
	}
	conc := opts.Concurrency
	if conc <= 0 {
		conc = DefaultConcurrency
	}
	// The parts outlive the request that started the stream: they belong
	// to the stream until Complete or Abort.
	gctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	g, gctx := errgroup.WithContext(gctx)
	g.SetLimit(conc)
	return &Stream{b: b, key: key, full: full, id: id, g: g, gctx: gctx, cancel: cancel}, nil
}

// UploadID names the upload, for AbortUpload after a crash.
func (s *Stream) UploadID() string { return s.id }

// AddPart sends bytes [off, off+n) of src as part number num (from 1) in
// the background; src must allow concurrent ReadAt. It blocks while the
// stream's concurrency is used up. Every part but the last must be at
// least 5 MiB. A failed part fails Complete.
func (s *Stream) AddPart(num int, src io.ReaderAt, off, n int64) {
	s.g.Go(func() error {
		out, err := s.b.s3.UploadPart(s.gctx, &s3.UploadPartInput{
			Bucket:        &s.b.bucket,
			Key:           &s.full,
			UploadId:      &s.id,
			PartNumber:    aws.Int32(int32(num)),
			Body:          newPartReader(src, off, n),
			ContentLength: aws.Int64(n),
		}, unsignedPayload)
		if err != nil {
			return fmt.Errorf("part %d: %w", num, err)
		}
		s.sent(num, out.ETag)
		return nil
	})
}

// AddCopyPart copies bytes [off, off+n) of the object src on the server as
// part number num, in the background, only while src's ETag is etag: if
// src changed, Complete fails with ErrPrecondition. Parts from data and
// copies mix freely in one upload, so an object can be rewritten by
// sending only its changed parts.
func (s *Stream) AddCopyPart(num int, src, etag string, off, n int64) {
	full, err := s.b.keys.object(src)
	s.g.Go(func() error {
		if err != nil {
			return fmt.Errorf("part %d: copy source: %w", num, err)
		}
		out, err := s.b.s3.UploadPartCopy(s.gctx, &s3.UploadPartCopyInput{
			Bucket:            &s.b.bucket,
			Key:               &s.full,
			UploadId:          &s.id,
			PartNumber:        aws.Int32(int32(num)),
			CopySource:        aws.String(s.b.copySource(full)),
			CopySourceRange:   aws.String(fmt.Sprintf("bytes=%d-%d", off, off+n-1)),
			CopySourceIfMatch: aws.String(etag),
		})
		if err != nil {
			return fmt.Errorf("part %d (copy of %s): %w", num, src, err)
		}
		var tag *string
		if out.CopyPartResult != nil {
			tag = out.CopyPartResult.ETag
		}
		s.sent(num, tag)
		return nil
	})
}

// sent records part num as stored, with its ETag.
func (s *Stream) sent(num int, etag *string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.parts) < num {
		s.parts = append(s.parts, s3types.CompletedPart{})
	}
	s.parts[num-1] = s3types.CompletedPart{ETag: etag, PartNumber: aws.Int32(int32(num))}
}

// Complete waits for the parts, which must be numbered 1 to parts, and
// commits the object of size bytes. On failure the upload is aborted and
// nothing is written under the key.
func (s *Stream) Complete(ctx context.Context, parts int, size int64, opts UploadOptions) (Object, error) {
	if s.finished {
		return Object{}, errors.New("stream already finished")
	}
	s.finished = true
	defer s.cancel()
	if err := s.g.Wait(); err != nil {
		return Object{}, s.b.abort(ctx, s.key, s.full, s.id, wrap("upload", s.key, err))
	}
	s.mu.Lock()
	done := s.parts
	s.mu.Unlock()
	if len(done) != parts {
		return Object{}, s.b.abort(ctx, s.key, s.full, s.id, fmt.Errorf("upload %s: %d parts sent, %d expected", s.key, len(done), parts))
	}
	in := &s3.CompleteMultipartUploadInput{
		Bucket:          &s.b.bucket,
		Key:             &s.full,
		UploadId:        &s.id,
		MultipartUpload: &s3types.CompletedMultipartUpload{Parts: done},
	}
	writeCondition{ifMatch: opts.IfMatch, ifNoneMatch: opts.IfNoneMatch}.apply(&in.IfMatch, &in.IfNoneMatch)
	out, err := s.b.s3.CompleteMultipartUpload(ctx, in)
	if err != nil {
		return Object{}, s.b.abort(ctx, s.key, s.full, s.id, wrap("upload", s.key, err))
	}
	return Object{
		Key:          s.key,
		Size:         size,
		ETag:         aws.ToString(out.ETag),
		LastModified: responseDate(out.ResultMetadata),
	}, nil
}

// Abort stops the parts in flight and abandons the upload.
func (s *Stream) Abort(ctx context.Context) error {
	if s.finished {
		return nil
	}
	s.finished = true
	s.cancel()
	s.g.Wait()
	return s.b.abort(ctx, s.key, s.full, s.id, nil)
}
