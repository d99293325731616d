package wsstack

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"

	"mount-ws/internal/detdata"
)

// DemoLargeSize is the size of the demo's large binary file.
const DemoLargeSize = 256 << 20

// DemoLargeSeed is the detdata seed of the demo's large file, so readers can
// check its bytes with detdata.Verify.
const DemoLargeSeed = 1

// DemoSmallFiles is how many files the demo's many-files directory holds.
const DemoSmallFiles = 3000

// seedObject is one object of a seed set: either fixed bytes or
// deterministic content of a size.
type seedObject struct {
	key  string // relative to the workspace prefix
	body []byte
	seed uint64
	size int64
}

func (o seedObject) length() int64 {
	if o.body != nil {
		return int64(len(o.body))
	}
	return o.size
}

func (o seedObject) reader() io.ReadSeeker {
	if o.body != nil {
		return bytes.NewReader(o.body)
	}
	return detdata.New(o.seed, o.size)
}

// DemoObjects lists what SeedDemo writes, as relative keys and sizes, so
// tests and docs can refer to it.
func DemoObjects() map[string]int64 {
	m := make(map[string]int64)
	for _, o := range demoSet(DemoLargeSize) {
		m[o.key] = o.length()
	}
	return m
}

// demoSet is the demo workspace's content: a few CSV files, a nested
// project tree with an empty directory, one large binary file and a
// directory of a few thousand small files. It is the same on every call.
func demoSet(largeSize int64) []seedObject {
	rng := rand.New(rand.NewPCG(42, 42))
	objs := []seedObject{
		{key: "README.txt", body: []byte("Demo workspace for mount-ws.\n\n" +
			"csv/       small tables for pandas\n" +
			"projects/  a nested tree of notebooks, configs and results\n" +
			"large/     one large binary file, for streaming reads\n" +
			"many/      thousands of small files, for ls and find\n")},
		{key: "csv/iris.csv", body: irisCSV(rng)},
		{key: "csv/sales-2025.csv", body: salesCSV(rng, 20000)},
		{key: "csv/sensors.csv", body: sensorCSV(rng, 5000)},
		{key: "projects/alpha/notebooks/explore.ipynb", body: []byte(`{"cells": [{"cell_type": "code", "source": ["import pandas as pd\n", "df = pd.read_csv('../../../csv/iris.csv')\n", "df.describe()"]}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}` + "\n")},
		{key: "projects/alpha/config.yaml", body: []byte("model: linear\nlearning_rate: 0.01\nepochs: 20\n")},
		{key: "projects/alpha/results/run-001/metrics.json", body: []byte(`{"accuracy": 0.91, "loss": 0.27}` + "\n")},
		{key: "projects/alpha/results/run-002/metrics.json", body: []byte(`{"accuracy": 0.93, "loss": 0.22}` + "\n")},
		{key: "projects/beta/src/train.py", body: []byte("import csv\n\nwith open('data.csv') as f:\n    rows = list(csv.reader(f))\nprint(len(rows))\n")},
		{key: "projects/beta/src/data.csv", body: salesCSV(rng, 100)},
		{key: "projects/beta/empty/", body: []byte{}}, // a directory marker
		{key: "large/weights.bin", seed: DemoLargeSeed, size: largeSize},
	}
	for i := range DemoSmallFiles {
		objs = append(objs, seedObject{
			key:  fmt.Sprintf("many/part-%02d/file-%05d.txt", i/500, i),
			body: []byte(strings.Repeat(fmt.Sprintf("record %05d\n", i), 1+i%40)),
		})
	}
	return objs
}

func irisCSV(rng *rand.Rand) []byte {
	var b strings.Builder
	b.WriteString("sepal_length,sepal_width,petal_length,petal_width,species\n")
	for i, sp := range []string{"setosa", "versicolor", "virginica"} {
		for range 50 {
			base := float64(i)
			fmt.Fprintf(&b, "%.1f,%.1f,%.1f,%.1f,%s\n", 5+base*0.7+rng.Float64(), 3+rng.Float64()*0.5, 1.4+base*2+rng.Float64(), 0.2+base*0.8+rng.Float64()*0.3, sp)
		}
	}
	return []byte(b.String())
}

func salesCSV(rng *rand.Rand, rows int) []byte {
	var b strings.Builder
	b.WriteString("date,region,product,units,revenue\n")
	regions := []string{"north", "south", "east", "west"}
	for i := range rows {
		units := 1 + rng.IntN(50)
		fmt.Fprintf(&b, "2025-%02d-%02d,%s,P%03d,%d,%.2f\n", 1+i%12, 1+i%28, regions[rng.IntN(4)], rng.IntN(200), units, float64(units)*(5+rng.Float64()*20))
	}
	return []byte(b.String())
}

func sensorCSV(rng *rand.Rand, rows int) []byte {
	var b strings.Builder
	b.WriteString("timestamp,sensor,temperature_c,humidity\n")
	for i := range rows {
		fmt.Fprintf(&b, "%d,s%02d,%.2f,%.1f\n", 1735689600+i*60, i%16, 15+rng.NormFloat64()*3, 40+rng.Float64()*20)
	}
	return []byte(b.String())
}

// SeedDemo writes the demo content into w's prefix with the root account,
// skipping objects already there with the right size, so a second run costs
// one listing. It returns how many objects it wrote.
func (s *Stack) SeedDemo(ctx context.Context, w Workspace) (int, error) {
	return s.seed(ctx, w, demoSet(DemoLargeSize))
}

func (s *Stack) seed(ctx context.Context, w Workspace, set []seedObject) (int, error) {
	w, err := w.withDefaults()
	if err != nil {
		return 0, err
	}
	existing, err := s.listSizes(ctx, w.Bucket, w.Prefix)
	if err != nil {
		return 0, err
	}
	var todo []seedObject
	for _, o := range set {
		if size, ok := existing[o.key]; !ok || size != o.length() {
			todo = append(todo, o)
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for _, o := range todo {
		g.Go(func() error { return s.putSeed(gctx, w.Bucket, w.Prefix+o.key, o) })
	}
	if err := g.Wait(); err != nil {
		return 0, err
	}
	return len(todo), nil
}

// listSizes maps every key under prefix (relative to it) to its size.
func (s *Stack) listSizes(ctx context.Context, bucket, prefix string) (map[string]int64, error) {
	sizes := make(map[string]int64)
	p := s3.NewListObjectsV2Paginator(s.root, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list %s/%s: %w", bucket, prefix, err)
		}
		for _, o := range page.Contents {
			sizes[strings.TrimPrefix(aws.ToString(o.Key), prefix)] = aws.ToInt64(o.Size)
		}
	}
	return sizes, nil
}

// seedPartSize is the multipart part size for large seed objects.
const seedPartSize = 16 << 20

func (s *Stack) putSeed(ctx context.Context, bucket, key string, o seedObject) error {
	if o.length() <= seedPartSize {
		_, err := s.root.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: o.reader(), ContentLength: aws.Int64(o.length())})
		if err != nil {
			return fmt.Errorf("seed %s: %w", key, err)
		}
		return nil
	}
	return s.putMultipart(ctx, bucket, key, detdata.New(o.seed, o.size))
}

// putMultipart uploads a large deterministic object in parallel parts.
func (s *Stack) putMultipart(ctx context.Context, bucket, key string, src *detdata.Reader) error {
	mpu, err := s.root.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &bucket, Key: &key})
	if err != nil {
		return fmt.Errorf("seed %s: create multipart upload: %w", key, err)
	}
	nparts := int((src.Size() + seedPartSize - 1) / seedPartSize)
	parts := make([]s3types.CompletedPart, nparts)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for i := range nparts {
		g.Go(func() error {
			off := int64(i) * seedPartSize
			n := min(seedPartSize, src.Size()-off)
			out, err := s.root.UploadPart(gctx, &s3.UploadPartInput{
				Bucket: &bucket, Key: &key, UploadId: mpu.UploadId,
				PartNumber:    aws.Int32(int32(i + 1)),
				Body:          io.NewSectionReader(src, off, n),
				ContentLength: aws.Int64(n),
			})
			if err != nil {
				return fmt.Errorf("seed %s: part %d: %w", key, i+1, err)
			}
			parts[i] = s3types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(int32(i + 1))}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		s.root.AbortMultipartUpload(context.WithoutCancel(ctx), &s3.AbortMultipartUploadInput{Bucket: &bucket, Key: &key, UploadId: mpu.UploadId})
		return err
	}
	_, err = s.root.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: &bucket, Key: &key, UploadId: mpu.UploadId,
		MultipartUpload: &s3types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		return fmt.Errorf("seed %s: complete: %w", key, err)
	}
	return nil
}
