package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"

	"mount-ws/internal/detdata"
)

// dataset is the content one benchmark run reads. Every object is detdata
// content, so every byte read back can be checked. Keys are relative to the
// workspace prefix and live under Root, so a quick and a full data set can
// share one kept data dir without disturbing each other.
type dataset struct {
	Name       string // "full" or "quick"; also the top directory
	BigSize    int64  // the object read sequentially and at random
	ParSize    int64  // each of the ParCount objects read in parallel
	ParCount   int
	FlatCount  int // objects in one directory, for ls -l
	TreeDirs   int // directories of the tree, for find
	TreeCount  int // objects in the tree, spread over TreeDirs
	SmallCount int // small files read by 8 readers
	SmallSize  int64
	// CatCount is how many objects the directory of the catone row holds;
	// reading one of them shows what the rest of a directory costs a tool.
	CatCount int
	// HugeCount is how many empty objects the directory of the opt-in
	// ls200k row holds; they are seeded only when that row runs.
	HugeCount int
	// ListedSize is the size of each flat, tree and cat object.
	ListedSize int64
	// RandRuntime is how long the random-read rows run.
	RandRuntime time.Duration
}

func fullDataset() dataset {
	return dataset{
		Name: "full", BigSize: 1 << 30, ParSize: 256 << 20, ParCount: 4,
		FlatCount: 10000, TreeDirs: 200, TreeCount: 20000,
		SmallCount: 2000, SmallSize: 16 << 10, CatCount: 1000, HugeCount: 200_000, ListedSize: 1 << 10,
		RandRuntime: 10 * time.Second,
	}
}

func quickDataset() dataset {
	return dataset{
		Name: "quick", BigSize: 256 << 20, ParSize: 64 << 20, ParCount: 4,
		FlatCount: 2000, TreeDirs: 40, TreeCount: 4000,
		SmallCount: 500, SmallSize: 16 << 10, CatCount: 1000, HugeCount: 20_000, ListedSize: 1 << 10,
		RandRuntime: 3 * time.Second,
	}
}

// Seeds of the detdata content. Small and listed objects add their index.
const (
	seedBig   = 1
	seedPar   = 11 // + i
	seedFlat  = 1_000_000
	seedTree  = 2_000_000
	seedSmall = 3_000_000
	seedCat   = 4_000_000
	seedHuge  = 5_000_000
)

// object is one object of the data set: its key relative to the workspace
// prefix and its detdata content.
type object struct {
	Key  string
	Seed uint64
	Size int64
}

func (d dataset) bigKey() string        { return d.Name + "/big/seq-1.bin" }
func (d dataset) parKey(i int) string   { return fmt.Sprintf("%s/big/par-%d.bin", d.Name, i) }
func (d dataset) flatDir() string       { return d.Name + "/flat" }
func (d dataset) treeDir() string       { return d.Name + "/tree" }
func (d dataset) smallKey(i int) string { return fmt.Sprintf("%s/small/f-%05d.bin", d.Name, i) }
func (d dataset) catDir() string        { return d.Name + "/cat" }
func (d dataset) hugeDir() string       { return d.Name + "/huge" }

func (d dataset) big() object { return object{d.bigKey(), seedBig, d.BigSize} }

func (d dataset) par(i int) object { return object{d.parKey(i), uint64(seedPar + i), d.ParSize} }

func (d dataset) small(i int) object {
	return object{d.smallKey(i), uint64(seedSmall + i), d.SmallSize}
}

func (d dataset) cat(i int) object {
	return object{fmt.Sprintf("%s/obj-%04d", d.catDir(), i), uint64(seedCat + i), d.ListedSize}
}

// hugeObjects lists the directory of the ls200k row: empty objects, so
// that seeding them is quick.
func (d dataset) hugeObjects() []object {
	objs := make([]object, d.HugeCount)
	for i := range objs {
		objs[i] = object{fmt.Sprintf("%s/obj-%06d", d.hugeDir(), i), uint64(seedHuge + i), 0}
	}
	return objs
}

// objects lists the data set every run reads, large objects first.
func (d dataset) objects() []object {
	objs := []object{d.big()}
	for i := range d.ParCount {
		objs = append(objs, d.par(i))
	}
	for i := range d.FlatCount {
		objs = append(objs, object{fmt.Sprintf("%s/obj-%05d", d.flatDir(), i), uint64(seedFlat + i), d.ListedSize})
	}
	perDir := (d.TreeCount + d.TreeDirs - 1) / d.TreeDirs
	for i := range d.TreeCount {
		objs = append(objs, object{fmt.Sprintf("%s/d%03d/obj-%05d", d.treeDir(), i/perDir, i), uint64(seedTree + i), d.ListedSize})
	}
	for i := range d.SmallCount {
		objs = append(objs, d.small(i))
	}
	// A kept data dir seeded before the catone row existed lacks these;
	// seed puts them, as it puts whatever else is missing.
	for i := range d.CatCount {
		objs = append(objs, d.cat(i))
	}
	return objs
}

// seedPartSize is the part size of multipart uploads while seeding.
const seedPartSize = 16 << 20

// seeder writes a data set with the gateway's root account. It skips objects
// already present with the right size, so seeding a kept data dir again
// costs a listing of each directory.
type seeder struct {
	client *s3.Client
	bucket string
	prefix string // the workspace prefix, ending in "/"
}

// seed writes what is missing of objs and returns how many objects it
// wrote. It lists only the directories objs are in (see seedDirs), so a
// directory that objs leave out costs nothing however large it is. On
// error, objects already written stay; a later run skips them.
func (s seeder) seed(ctx context.Context, objs []object) (int, error) {
	existing := make(map[string]int64)
	for _, dir := range seedDirs(objs) {
		sizes, err := s.sizes(ctx, dir)
		if err != nil {
			return 0, err
		}
		maps.Copy(existing, sizes)
	}
	var todo []object
	for _, o := range objs {
		if size, ok := existing[o.Key]; !ok || size != o.Size {
			todo = append(todo, o)
		}
	}
	// Large objects one at a time, each with parallel parts; then the
	// small ones with many PUTs in flight.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(seedConns)
	for _, o := range todo {
		if o.Size > seedPartSize {
			if err := s.putMultipart(ctx, o); err != nil {
				return 0, err
			}
			continue
		}
		g.Go(func() error { return s.put(gctx, o) })
	}
	if err := g.Wait(); err != nil {
		return 0, err
	}
	return len(todo), nil
}

// seedDirs lists the directories two levels down that hold objs (full/big/,
// full/flat/, …), each once, in the order objs first name them.
func seedDirs(objs []object) []string {
	var dirs []string
	seen := make(map[string]bool)
	for _, o := range objs {
		dir := ""
		if first, rest, ok := strings.Cut(o.Key, "/"); ok {
			dir = first + "/"
			if second, _, ok := strings.Cut(rest, "/"); ok {
				dir += second + "/"
			}
		}
		if !seen[dir] {
			seen[dir] = true
			dirs = append(dirs, dir)
		}
	}
	return dirs
}

// seedConns is how many small PUTs seeding keeps in flight, and how many
// connections its client keeps open for them.
const seedConns = 16

// newSeederClient is root (the stack's client straight to the S3 server)
// with an idle connection for each PUT in flight: root keeps two, so most
// of many small PUTs would each open a connection, and leave it in
// TIME_WAIT when done.
func newSeederClient(root *s3.Client) *s3.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = seedConns
	tr.MaxIdleConnsPerHost = seedConns
	o := root.Options()
	o.HTTPClient = &http.Client{Transport: tr}
	return s3.New(o)
}

// sizes maps every key under rel (relative to the workspace prefix) to its
// size.
func (s seeder) sizes(ctx context.Context, rel string) (map[string]int64, error) {
	sizes := make(map[string]int64)
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: aws.String(s.prefix + rel)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list %s%s: %w", s.prefix, rel, err)
		}
		for _, o := range page.Contents {
			sizes[strings.TrimPrefix(aws.ToString(o.Key), s.prefix)] = aws.ToInt64(o.Size)
		}
	}
	return sizes, nil
}

func (s seeder) put(ctx context.Context, o object) error {
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &s.bucket, Key: aws.String(s.prefix + o.Key),
		Body: detdata.New(o.Seed, o.Size), ContentLength: aws.Int64(o.Size),
	})
	if err != nil {
		return fmt.Errorf("seed %s: %w", o.Key, err)
	}
	return nil
}

// putMultipart uploads a large object in parallel parts, aborting the
// upload if a part fails.
func (s seeder) putMultipart(ctx context.Context, o object) error {
	key := s.prefix + o.Key
	mpu, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return fmt.Errorf("seed %s: create multipart upload: %w", o.Key, err)
	}
	src := detdata.New(o.Seed, o.Size)
	nparts := int((o.Size + seedPartSize - 1) / seedPartSize)
	parts := make([]s3types.CompletedPart, nparts)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i := range nparts {
		g.Go(func() error {
			off := int64(i) * seedPartSize
			n := min(seedPartSize, o.Size-off)
			out, err := s.client.UploadPart(gctx, &s3.UploadPartInput{
				Bucket: &s.bucket, Key: &key, UploadId: mpu.UploadId,
				PartNumber:    aws.Int32(int32(i + 1)),
				Body:          io.NewSectionReader(src, off, n),
				ContentLength: aws.Int64(n),
			})
			if err != nil {
				return fmt.Errorf("seed %s: part %d: %w", o.Key, i+1, err)
			}
			parts[i] = s3types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(int32(i + 1))}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		s.client.AbortMultipartUpload(context.WithoutCancel(ctx), &s3.AbortMultipartUploadInput{Bucket: &s.bucket, Key: &key, UploadId: mpu.UploadId})
		return err
	}
	if _, err := s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: &s.bucket, Key: &key, UploadId: mpu.UploadId,
		MultipartUpload: &s3types.CompletedMultipartUpload{Parts: parts},
	}); err != nil {
		return fmt.Errorf("seed %s: complete: %w", o.Key, err)
	}
	return nil
}

// removeWrites deletes what the write rows wrote under the data set, so a
// kept data dir does not grow by gigabytes per run.
func (s seeder) removeWrites(ctx context.Context, d dataset) (int, error) {
	prefix := s.prefix + d.Name + "/writes/"
	removed := 0
	var token *string
	for {
		page, err := s.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: &prefix, ContinuationToken: token})
		if err != nil {
			return removed, fmt.Errorf("list %s: %w", prefix, err)
		}
		if len(page.Contents) > 0 {
			ids := make([]s3types.ObjectIdentifier, len(page.Contents))
			for i, o := range page.Contents {
				ids[i] = s3types.ObjectIdentifier{Key: o.Key}
			}
			if _, err := s.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: &s.bucket, Delete: &s3types.Delete{Objects: ids, Quiet: aws.Bool(true)}}); err != nil {
				return removed, fmt.Errorf("delete under %s: %w", prefix, err)
			}
			removed += len(ids)
		}
		if !aws.ToBool(page.IsTruncated) {
			return removed, nil
		}
		token = page.NextContinuationToken
	}
}
