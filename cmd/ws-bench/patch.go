package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Rows that change a large file in place (issue 13): appending a line, and
// one byte written in the middle (dd conv=notrunc). Before each
// measurement, the big object is copied on the server to the row's key
// (untimed, uncounted), so every measurement starts from the same file.

// patchPartSize is the part size of the SDK's patch, as mount-ws's.
const patchPartSize = 16 << 20

func (b bench) patchWorkloads() []workload {
	d := b.data
	line := []byte("epoch 41, loss 0.173\n")
	row := func(id, title, how string, off int64, data []byte) workload {
		key := d.Name + "/bench-write/" + id + ".bin"
		return workload{
			ID: id, Title: title, Unit: "s", LowerIsBetter: true, Writes: true,
			SDKMethod:   "the least S3 allows: unchanged 16 MiB parts copied on the server (UploadPartCopy), the changed part fetched and sent",
			MountMethod: how + ", then close(2)",
			Setup: func(ctx context.Context, s sdk) error {
				return s.copyObject(ctx, d.bigKey(), key)
			},
			SDK: func(ctx context.Context, s sdk) (float64, error) {
				start := time.Now()
				err := s.patch(ctx, key, d.BigSize, off, data)
				return time.Since(start).Seconds(), err
			},
			Mount: func(ctx context.Context, mnt string) (float64, error) {
				start := time.Now()
				err := patchFile(filepath.Join(mnt, key), off, data, off == d.BigSize)
				return time.Since(start).Seconds(), err
			},
		}
	}
	return []workload{
		row("append", fmt.Sprintf("Append a line to a %s file", sizeName(d.BigSize)),
			"open(O_APPEND), one write", d.BigSize, line),
		row("notrunc", fmt.Sprintf("Write 1 byte into a %s file", sizeName(d.BigSize)),
			"open(O_WRONLY), pwrite of 1 byte at the middle (dd conv=notrunc)", d.BigSize/2+12345, []byte{'X'}),
	}
}

// patchFile writes data at off (appending when appendOnly) and closes.
func patchFile(path string, off int64, data []byte, appendOnly bool) error {
	flags := os.O_WRONLY
	if appendOnly {
		flags |= os.O_APPEND
	}
	f, err := os.OpenFile(path, flags, 0)
	if err != nil {
		return err
	}
	if appendOnly {
		_, err = f.Write(data)
	} else {
		_, err = f.WriteAt(data, off)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// copyObject copies src to dst on the server.
func (s sdk) copyObject(ctx context.Context, src, dst string) error {
	size, err := s.size(ctx, src)
	if err != nil {
		return err
	}
	return s.multipart(ctx, dst, size, func(part int32, off, n int64) (*s3.UploadPartCopyInput, []byte, error) {
		return &s3.UploadPartCopyInput{
			CopySource:      aws.String(s.bucket + "/" + s.prefix + src),
			CopySourceRange: aws.String(fmt.Sprintf("bytes=%d-%d", off, off+n-1)),
		}, nil, nil
	})
}

// patch rewrites the object key of size bytes with data written at off:
// parts that hold none of data are copied on the server, the others are
// fetched, changed and sent.
func (s sdk) patch(ctx context.Context, key string, size, off int64, data []byte) error {
	end := max(size, off+int64(len(data)))
	return s.multipart(ctx, key, end, func(part int32, at, n int64) (*s3.UploadPartCopyInput, []byte, error) {
		if at+n <= size && (off >= at+n || off+int64(len(data)) <= at) {
			return &s3.UploadPartCopyInput{
				CopySource:      aws.String(s.bucket + "/" + s.prefix + key),
				CopySourceRange: aws.String(fmt.Sprintf("bytes=%d-%d", at, at+n-1)),
			}, nil, nil
		}
		buf := make([]byte, n)
		if have := min(at+n, size) - at; have > 0 {
			out, err := s.client.GetObject(ctx, &s3.GetObjectInput{
				Bucket: &s.bucket, Key: aws.String(s.prefix + key),
				Range: aws.String(fmt.Sprintf("bytes=%d-%d", at, at+have-1)),
			})
			if err != nil {
				return nil, nil, err
			}
			_, err = io.ReadFull(out.Body, buf[:have])
			out.Body.Close()
			if err != nil {
				return nil, nil, err
			}
		}
		// The part of data that falls in [at, at+n).
		from, to := max(off, at), min(off+int64(len(data)), at+n)
		if from < to {
			copy(buf[from-at:], data[from-off:to-off])
		}
		return nil, buf, nil
	})
}

// multipart writes an object of size bytes under key from patchPartSize
// parts, each either copied (the input returned) or sent (the bytes).
func (s sdk) multipart(ctx context.Context, key string, size int64, part func(num int32, off, n int64) (*s3.UploadPartCopyInput, []byte, error)) error {
	full := aws.String(s.prefix + key)
	created, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &s.bucket, Key: full})
	if err != nil {
		return err
	}
	id := created.UploadId
	var done []s3types.CompletedPart
	fail := func(err error) error {
		s.client.AbortMultipartUpload(context.WithoutCancel(ctx), &s3.AbortMultipartUploadInput{Bucket: &s.bucket, Key: full, UploadId: id})
		return err
	}
	for num, off := int32(1), int64(0); off < size; num, off = num+1, off+patchPartSize {
		n := min(int64(patchPartSize), size-off)
		in, body, err := part(num, off, n)
		if err != nil {
			return fail(err)
		}
		var etag *string
		if in != nil {
			in.Bucket, in.Key, in.UploadId, in.PartNumber = &s.bucket, full, id, aws.Int32(num)
			out, err := s.client.UploadPartCopy(ctx, in)
			if err != nil {
				return fail(err)
			}
			etag = out.CopyPartResult.ETag
		} else {
			out, err := s.client.UploadPart(ctx, &s3.UploadPartInput{
				Bucket: &s.bucket, Key: full, UploadId: id, PartNumber: aws.Int32(num),
				Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body))),
			})
			if err != nil {
				return fail(err)
			}
			etag = out.ETag
		}
		done = append(done, s3types.CompletedPart{ETag: etag, PartNumber: aws.Int32(num)})
	}
	_, err = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: &s.bucket, Key: full, UploadId: id,
		MultipartUpload: &s3types.CompletedMultipartUpload{Parts: done},
	})
	if err != nil {
		return fail(err)
	}
	return nil
}

// size returns the size of the object key.
func (s sdk) size(ctx context.Context, key string) (int64, error) {
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: aws.String(s.prefix + key)})
	if err != nil {
		return 0, err
	}
	return aws.ToInt64(out.ContentLength), nil
}
