package bucket_test

import (
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"

	"mount-ws/bucket"
	"mount-ws/internal/detdata"
)

// Benchmarks compare the Bucket with an SDK client left at its defaults,
// on the local gateway:
//
//	go test -run XXX -bench . -benchtime 5x ./bucket/
const (
	benchSize  = 256 << 20
	benchChunk = 8 << 20
	benchPar   = 8
)

// benchClients returns the tuned Bucket and a default SDK client for the
// same credentials and prefix.
func benchClients(b *testing.B) (*bucket.Bucket, *s3.Client, bucket.Config) {
	c := mint(b, testOrg, testWS, testToken)
	cfg := bucket.Config{
		Bucket: c.Bucket, Prefix: c.Prefix + "bench/", Endpoint: c.Endpoint, Region: c.Region,
		Credentials: credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, c.SessionToken),
	}
	bk, err := bucket.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	sdk := s3.New(s3.Options{
		BaseEndpoint: aws.String(c.Endpoint), Region: c.Region, UsePathStyle: true, Credentials: cfg.Credentials,
	})
	return bk, sdk, cfg
}

func BenchmarkParallelRangedGet(b *testing.B) {
	bk, sdk, cfg := benchClients(b)
	ctx := context.Background()
	if _, err := bk.Upload(ctx, "get.bin", detdata.New(1, benchSize), benchSize, bucket.Meta{}, bucket.UploadOptions{}); err != nil {
		b.Fatal(err)
	}
	read := map[string]func(off int64) (io.ReadCloser, error){
		"bucket": func(off int64) (io.ReadCloser, error) { return bk.Get(ctx, "get.bin", off, benchChunk, "") },
		"sdk-default": func(off int64) (io.ReadCloser, error) {
			out, err := sdk.GetObject(ctx, &s3.GetObjectInput{Bucket: &cfg.Bucket, Key: aws.String(cfg.Prefix + "get.bin"),
				Range: aws.String(fmt.Sprintf("bytes=%d-%d", off, off+benchChunk-1))})
			if err != nil {
				return nil, err
			}
			return out.Body, nil
		},
	}
	for _, name := range []string{"bucket", "sdk-default"} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(benchSize)
			for b.Loop() {
				g := errgroup.Group{}
				g.SetLimit(benchPar)
				for off := int64(0); off < benchSize; off += benchChunk {
					g.Go(func() error {
						rc, err := read[name](off)
						if err != nil {
							return err
						}
						defer rc.Close()
						_, err = io.Copy(io.Discard, rc)
						return err
					})
				}
				if err := g.Wait(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkUpload(b *testing.B) {
	bk, sdk, cfg := benchClients(b)
	ctx := context.Background()
	src := detdata.New(2, benchSize)
	b.Run("bucket", func(b *testing.B) {
		b.SetBytes(benchSize)
		for b.Loop() {
			if _, err := bk.Upload(ctx, "up.bin", src, benchSize, bucket.Meta{}, bucket.UploadOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sdk-default", func(b *testing.B) {
		b.SetBytes(benchSize)
		key := aws.String(cfg.Prefix + "up.bin")
		for b.Loop() {
			mpu, err := sdk.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &cfg.Bucket, Key: key})
			if err != nil {
				b.Fatal(err)
			}
			parts := make([]types.CompletedPart, benchSize/bucket.DefaultPartSize)
			g := errgroup.Group{}
			g.SetLimit(bucket.DefaultConcurrency)
			for i := range parts {
				g.Go(func() error {
					out, err := sdk.UploadPart(ctx, &s3.UploadPartInput{Bucket: &cfg.Bucket, Key: key, UploadId: mpu.UploadId,
						PartNumber: aws.Int32(int32(i + 1)), Body: io.NewSectionReader(src, int64(i)*bucket.DefaultPartSize, bucket.DefaultPartSize)})
					if err != nil {
						return err
					}
					parts[i] = types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(int32(i + 1))}
					return nil
				})
			}
			if err := g.Wait(); err != nil {
				b.Fatal(err)
			}
			if _, err := sdk.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: &cfg.Bucket, Key: key, UploadId: mpu.UploadId,
				MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
