package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"

	"mount-ws/internal/wsstack"
)

// mint asks the workspace API for one set of credentials with token, as any
// client of the workspace would.
func mint(ctx context.Context, apiURL, org, ws, token string) (wsstack.CredentialsResponse, error) {
	var cr wsstack.CredentialsResponse
	url := fmt.Sprintf("%s/api/v1/org/%s/ws/%s/storage/credentials", apiURL, org, ws)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return cr, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return cr, fmt.Errorf("mint credentials: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return cr, fmt.Errorf("mint credentials: %s: %s", resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(&cr); err != nil {
		return cr, fmt.Errorf("mint credentials: decode: %w", err)
	}
	return cr, nil
}

// sdkConns is how many connections the SDK client keeps to the endpoint.
const sdkConns = 64

// newSDKClient is the ceiling's client: the workspace's own credentials,
// through the same (counting) endpoint mount-ws uses, configured like
// mount-ws's bucket client (no optional checksums, no Expect: 100-continue,
// no transparent compression, many idle connections).
func newSDKClient(cr wsstack.CredentialsResponse) *s3.Client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        sdkConns,
		MaxIdleConnsPerHost: sdkConns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return s3.New(s3.Options{
		HTTPClient:                   &http.Client{Transport: tr},
		BaseEndpoint:                 aws.String(cr.Endpoint),
		Region:                       cr.Region,
		UsePathStyle:                 true,
		Credentials:                  credentials.NewStaticCredentialsProvider(cr.AccessKeyID, cr.SecretAccessKey, cr.SessionToken),
		RequestChecksumCalculation:   aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation:   aws.ResponseChecksumValidationWhenRequired,
		ContinueHeaderThresholdBytes: -1,
		DisableLogOutputChecksumValidationSkipped: true,
	})
}

// sdk reads the workspace directly: the ceiling of every row.
type sdk struct {
	client *s3.Client
	bucket string
	prefix string // the workspace prefix, ending in "/"
	check  checker
}

// Ranged-GET parameters of the ceiling for large reads.
const (
	sdkPartSize    = 8 << 20
	sdkConcurrency = 8
)

// parallelGet reads every object with ranged GETs of sdkPartSize, up to
// sdkConcurrency at once over all of them, checking each part as it
// arrives (in place of reassembling: the bytes are checked, then dropped).
// It returns the bytes read.
func (s sdk) parallelGet(ctx context.Context, objs []object) (int64, error) {
	type part struct {
		o   object
		off int64
		n   int64
	}
	var parts []part
	var total int64
	for _, o := range objs {
		for off := int64(0); off < o.Size; off += sdkPartSize {
			parts = append(parts, part{o, off, min(sdkPartSize, o.Size-off)})
		}
		total += o.Size
	}
	next := make(chan part)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(next)
		for _, p := range parts {
			select {
			case next <- p:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	for range sdkConcurrency {
		g.Go(func() error {
			buf := make([]byte, sdkPartSize)
			for p := range next {
				if err := s.getRange(gctx, p.o, p.off, buf[:p.n]); err != nil {
					return err
				}
				if err := s.check.check(p.o, p.off, buf[:p.n]); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return 0, err
	}
	return total, nil
}

// getRange fills buf with o's bytes from off.
func (s sdk) getRange(ctx context.Context, o object, off int64, buf []byte) error {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: &s.bucket, Key: aws.String(s.prefix + o.Key),
		Range: aws.String(fmt.Sprintf("bytes=%d-%d", off, off+int64(len(buf))-1)),
	})
	if err != nil {
		return fmt.Errorf("get %s at %d: %w", o.Key, off, err)
	}
	defer out.Body.Close()
	if _, err := io.ReadFull(out.Body, buf); err != nil {
		return fmt.Errorf("get %s at %d: body: %w", o.Key, off, err)
	}
	return nil
}

// randomReads issues ranged GETs of bs bytes at random bs-aligned offsets
// of o, one at a time (like fio's psync engine), for d, and returns reads
// per second.
func (s sdk) randomReads(ctx context.Context, o object, bs int64, d time.Duration) (float64, error) {
	return randomBlocks(s.check, o, bs, d, func(buf []byte, off int64) error {
		return s.getRange(ctx, o, off, buf)
	})
}

// list pages through ListObjectsV2 under rel (relative to the workspace
// prefix), with delimiter "/" when shallow, and returns the number of keys
// and common prefixes seen.
func (s sdk) list(ctx context.Context, rel string, shallow bool) (int, error) {
	in := &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: aws.String(s.prefix + rel)}
	if shallow {
		in.Delimiter = aws.String("/")
	}
	p := s3.NewListObjectsV2Paginator(s.client, in)
	n := 0
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return n, fmt.Errorf("list %s: %w", rel, err)
		}
		n += len(page.Contents) + len(page.CommonPrefixes)
	}
	return n, nil
}

// getAll reads every object whole with one GET each, conc at a time.
func (s sdk) getAll(ctx context.Context, objs []object, conc int) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(conc)
	for _, o := range objs {
		g.Go(func() error {
			out, err := s.client.GetObject(gctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: aws.String(s.prefix + o.Key)})
			if err != nil {
				return fmt.Errorf("get %s: %w", o.Key, err)
			}
			b, err := io.ReadAll(out.Body)
			out.Body.Close()
			if err != nil {
				return fmt.Errorf("get %s: body: %w", o.Key, err)
			}
			if int64(len(b)) != o.Size {
				return fmt.Errorf("get %s: %d bytes, want %d", o.Key, len(b), o.Size)
			}
			return s.check.check(o, 0, b)
		})
	}
	return g.Wait()
}

// upload is the write ceiling: a multipart upload of src (parts of twice
// the read part size, sdkConcurrency at once), as a tool would send it.
func (s sdk) upload(ctx context.Context, rel string, src io.ReaderAt, size int64) error {
	key := s.prefix + rel
	mpu, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return fmt.Errorf("create upload: %w", err)
	}
	const part = 2 * sdkPartSize
	n := int((size + part - 1) / part)
	parts := make([]s3types.CompletedPart, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(sdkConcurrency)
	for i := range n {
		off := int64(i) * part
		ln := min(part, size-off)
		g.Go(func() error {
			out, err := s.client.UploadPart(gctx, &s3.UploadPartInput{
				Bucket: &s.bucket, Key: &key, UploadId: mpu.UploadId, PartNumber: aws.Int32(int32(i + 1)),
				Body: io.NewSectionReader(src, off, ln), ContentLength: aws.Int64(ln),
			}, func(o *s3.Options) {
				o.APIOptions = append(o.APIOptions, v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)
			})
			if err != nil {
				return err
			}
			parts[i] = s3types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(int32(i + 1))}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		s.client.AbortMultipartUpload(context.WithoutCancel(ctx), &s3.AbortMultipartUploadInput{Bucket: &s.bucket, Key: &key, UploadId: mpu.UploadId})
		return fmt.Errorf("upload parts: %w", err)
	}
	_, err = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: &s.bucket, Key: &key, UploadId: mpu.UploadId,
		MultipartUpload: &s3types.CompletedMultipartUpload{Parts: parts},
	})
	return err
}
