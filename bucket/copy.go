package bucket

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// copyConcurrency is how many parts of a multipart copy run at once.
const copyConcurrency = 8

// Copy copies the object src to dst on the server, replacing any object
// under dst. With meta nil the metadata and Content-Type are copied;
// otherwise meta's replace them (an empty ContentType keeps src's). Copying an object onto itself
// (how metadata changes) needs meta: S3 refuses a copy that changes
// nothing.
//
// Copy heads src first, to choose by size between CopyObject and a
// multipart copy (above the threshold, 5 GiB by default), and every copy
// request carries the ETag seen then as x-amz-copy-source-if-match: if src
// changes during the copy, the copy fails with ErrPrecondition rather than
// mixing two versions. A failed multipart copy is aborted (see
// UploadLeftError). The returned Object has dst's key, ETag, size, time
// and metadata.
//
// srcETag, when set, is the version of src the caller means (a change of
// the metadata of the version it knows): when src is another one, Copy
// copies nothing and fails with ErrPrecondition, so that it never gives
// another writer's object metadata meant for the one it replaced.
func (b *Bucket) Copy(ctx context.Context, src, dst string, meta *Meta, srcETag string) (Object, error) {
	fullSrc, err := b.keys.object(src)
	if err != nil {
		return Object{}, fmt.Errorf("copy: %w", err)
	}
	fullDst, err := b.keys.object(dst)
	if err != nil {
		return Object{}, fmt.Errorf("copy: %w", err)
	}
	head, err := b.head(ctx, src, fullSrc)
	if err != nil {
		return Object{}, err
	}
	what := src + " to " + dst
	if srcETag != "" && head.ETag != srcETag {
		return Object{}, fmt.Errorf("copy %s: %s is another version than %s: %w", what, head.ETag, srcETag, ErrPrecondition)
	}
	directive := s3types.MetadataDirectiveReplace
	set := Meta{User: head.Metadata, ContentType: head.ContentType}
	if meta == nil {
		directive = s3types.MetadataDirectiveCopy
	} else {
		set.User = meta.User
		if meta.ContentType != "" {
			set.ContentType = meta.ContentType
		}
	}
	if head.Size > b.copyThreshold {
		return b.copyMultipart(ctx, what, dst, head, set)
	}
	in := &s3.CopyObjectInput{
		Bucket:            &b.bucket,
		Key:               &fullDst,
		CopySource:        aws.String(b.copySource(fullSrc)),
		CopySourceIfMatch: aws.String(head.ETag),
		MetadataDirective: directive,
	}
	if directive == s3types.MetadataDirectiveReplace {
		in.Metadata = set.User
		in.ContentType = set.contentType()
	}
	out, err := b.s3.CopyObject(ctx, in)
	if err != nil {
		return Object{}, wrap("copy", what, err)
	}
	obj := Object{Key: dst, Size: head.Size, Metadata: lowerKeys(set.User), ContentType: set.ContentType}
	if r := out.CopyObjectResult; r != nil {
		obj.ETag = aws.ToString(r.ETag)
		obj.LastModified = aws.ToTime(r.LastModified)
	}
	return obj, nil
}

// copyMultipart copies with UploadPartCopy, parts in parallel.
func (b *Bucket) copyMultipart(ctx context.Context, what, dst string, head Object, meta Meta) (Object, error) {
	size := head.Size
	partSize := max(min(b.copyPartSize, MaxPartSize), ceilDiv(size, MaxParts))
	s, err := b.StartStream(ctx, dst, meta, UploadOptions{Concurrency: copyConcurrency})
	if err != nil {
		return Object{}, fmt.Errorf("copy %s: %w", what, err)
	}
	defer context.AfterFunc(ctx, s.cancel)()
	parts := 0
	for off := int64(0); off < size; off += partSize {
		parts++
		s.AddCopyPart(parts, head.Key, head.ETag, off, min(partSize, size-off))
	}
	o, err := s.Complete(ctx, parts, size, UploadOptions{})
	if err != nil {
		return Object{}, fmt.Errorf("copy %s: %w", what, err)
	}
	o.Metadata, o.ContentType = lowerKeys(meta.User), meta.ContentType
	return o, nil
}

// copySource is the x-amz-copy-source of a full key: "bucket/key" with
// every byte of the key but unreserved characters and "/" percent-encoded.
// "+" is encoded too, since some servers decode it as a space.
func (b *Bucket) copySource(full string) string {
	const hex = "0123456789ABCDEF"
	var sb strings.Builder
	sb.Grow(len(b.bucket) + 1 + len(full)*3)
	sb.WriteString(b.bucket)
	sb.WriteByte('/')
	for i := 0; i < len(full); i++ {
		c := full[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '_', c == '.', c == '~', c == '/':
			sb.WriteByte(c)
		default:
			sb.WriteByte('%')
			sb.WriteByte(hex[c>>4])
			sb.WriteByte(hex[c&15])
		}
	}
	return sb.String()
}
