package bucket

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Page is one page of a listing.
type Page struct {
	// Objects are the objects directly in the directory, keys relative to
	// the prefix (not to the directory). The directory's own marker
	// object, if there is one, is among them with Key equal to the
	// directory.
	Objects []Object
	// Prefixes are the subdirectories (common prefixes), relative to the
	// prefix and ending in "/", whether or not a marker object exists.
	Prefixes []string
	// Next is the continuation token for the next page; "" on the last.
	Next string
}

// List returns one page (at most 1,000 entries) of the directory dir: ""
// for the top of the prefix, or a relative key ending in "/". Pass the
// previous page's Next as continuation, "" for the first page. Keys in the
// answer are not validated; see the package documentation.
func (b *Bucket) List(ctx context.Context, dir, continuation string) (Page, error) {
	return b.listDir(ctx, dir, continuation, "")
}

// ListAfter returns the first page of the directory dir (see List) from
// the first key after the relative key after: the rest of a listing whose
// start was read otherwise (bucket.ListFrom). Go on with List and the
// page's Next.
func (b *Bucket) ListAfter(ctx context.Context, dir, after string) (Page, error) {
	return b.listDir(ctx, dir, "", after)
}

func (b *Bucket) listDir(ctx context.Context, dir, continuation, after string) (Page, error) {
	full, err := b.keys.dir(dir)
	if err != nil {
		return Page{}, fmt.Errorf("list: %w", err)
	}
	in := &s3.ListObjectsV2Input{
		Bucket:    &b.bucket,
		Prefix:    &full,
		Delimiter: aws.String("/"),
		MaxKeys:   aws.Int32(b.listMaxKeys),
	}
	if continuation != "" {
		in.ContinuationToken = &continuation
	}
	if after != "" {
		// Only a position: S3 lists the keys of the prefix past it.
		in.StartAfter = aws.String(b.keys.position(after))
	}
	out, err := b.s3.ListObjectsV2(ctx, in)
	if err != nil {
		return Page{}, wrap("list", dir, err)
	}
	p := Page{Objects: make([]Object, 0, len(out.Contents))}
	if aws.ToBool(out.IsTruncated) {
		p.Next = aws.ToString(out.NextContinuationToken)
		if p.Next == "" {
			return Page{}, fmt.Errorf("list %s: truncated page without a continuation token", dir)
		}
	}
	for _, o := range out.Contents {
		if obj, ok := b.listed(o.Key, o.Size, o.ETag, o.LastModified); ok {
			p.Objects = append(p.Objects, obj)
		}
	}
	for _, cp := range out.CommonPrefixes {
		if rel, ok := b.keys.rel(aws.ToString(cp.Prefix)); ok && rel != "" {
			p.Prefixes = append(p.Prefixes, rel)
		} else {
			b.log.Warn("listing returned a prefix outside the workspace", "dir", dir, "prefix", aws.ToString(cp.Prefix))
		}
	}
	return p, nil
}

// ListAll lists every page of the directory dir; see List.
func (b *Bucket) ListAll(ctx context.Context, dir string) ([]Object, []string, error) {
	var objs []Object
	var prefixes []string
	next := ""
	for {
		p, err := b.List(ctx, dir, next)
		if err != nil {
			return nil, nil, err
		}
		objs = append(objs, p.Objects...)
		prefixes = append(prefixes, p.Prefixes...)
		if p.Next == "" {
			return objs, prefixes, nil
		}
		next = p.Next
	}
}

// ListRecursive calls fn for every object under dir ("" or ending in
// "/"), at any depth, in key order, including directory markers. It stops
// at and returns the first error of fn, unwrapped.
func (b *Bucket) ListRecursive(ctx context.Context, dir string, fn func(Object) error) error {
	full, err := b.keys.dir(dir)
	if err != nil {
		return fmt.Errorf("list: %w", err)
	}
	pager := s3.NewListObjectsV2Paginator(b.s3, &s3.ListObjectsV2Input{
		Bucket:  &b.bucket,
		Prefix:  &full,
		MaxKeys: aws.Int32(b.listMaxKeys),
	})
	for pager.HasMorePages() {
		out, err := pager.NextPage(ctx)
		if err != nil {
			return wrap("list", dir, err)
		}
		for _, o := range out.Contents {
			obj, ok := b.listed(o.Key, o.Size, o.ETag, o.LastModified)
			if !ok {
				continue
			}
			if err := fn(obj); err != nil {
				return err
			}
		}
	}
	return nil
}

// KeysFrom is one page of the keys that begin with a name.
type KeysFrom struct {
	// Objects are the first keys that begin with the name, at any depth
	// and in key order, relative to the prefix; keys that cannot be
	// objects of the workspace are left out.
	Objects []Object
	// Truncated: more keys follow the last one listed.
	Truncated bool
	// Last is the last key the page covered (also when it was left out),
	// relative to the prefix; "" when the page was empty.
	Last string
}

// ListFrom returns the first page (at most max keys, and at most the page
// size) of the keys that begin with key, not only those under key/: one
// request that tells whether key is an object, whether anything lies
// under key/, and what, as far as the page reaches.
func (b *Bucket) ListFrom(ctx context.Context, key string, max int) (KeysFrom, error) {
	full, err := b.keys.object(key)
	if err != nil {
		return KeysFrom{}, fmt.Errorf("list: %w", err)
	}
	return b.keysFrom(ctx, key, full, min(b.listMaxKeys, int32(max)))
}

// keysFrom lists the first max keys that begin with full, what names.
func (b *Bucket) keysFrom(ctx context.Context, what, full string, max int32) (KeysFrom, error) {
	out, err := b.s3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
		Bucket:  &b.bucket,
		Prefix:  &full,
		MaxKeys: aws.Int32(max),
	})
	if err != nil {
		return KeysFrom{}, wrap("list", what, err)
	}
	p := KeysFrom{Objects: make([]Object, 0, len(out.Contents)), Truncated: aws.ToBool(out.IsTruncated)}
	for _, o := range out.Contents {
		if obj, ok := b.listed(o.Key, o.Size, o.ETag, o.LastModified); ok {
			p.Objects = append(p.Objects, obj)
		}
	}
	if n := len(out.Contents); n > 0 {
		if rel, ok := b.keys.rel(aws.ToString(out.Contents[n-1].Key)); ok {
			p.Last = rel
		}
	}
	return p, nil
}

// DirProbe is what one LIST of one key says of a directory.
type DirProbe struct {
	// Exists: something is stored under the directory, its marker included.
	Exists bool
	// Marker: the directory's own marker object is stored. It is the
	// first key under the directory, so the same LIST tells.
	Marker bool
}

// ProbeDir tells whether anything is stored under the directory dir (a
// relative key ending in "/"), and whether its marker is: one LIST of one
// key, for lookups that only need to know whether a directory exists and
// whether it has a marker to read its metadata from.
func (b *Bucket) ProbeDir(ctx context.Context, dir string) (DirProbe, error) {
	full, err := b.keys.dir(dir)
	if err != nil {
		return DirProbe{}, fmt.Errorf("list: %w", err)
	}
	p, err := b.keysFrom(ctx, dir, full, 1)
	if err != nil {
		return DirProbe{}, err
	}
	return DirProbe{Exists: p.Last != "", Marker: p.Last == dir}, nil
}
