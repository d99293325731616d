package bucket

import (
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Object describes one object.
type Object struct {
	// Key is relative to the prefix.
	Key  string
	Size int64
	// ETag is opaque and kept as the server sent it (with its quotes);
	// compare it for equality and pass it to Get's ifMatch.
	ETag string
	// LastModified has a second's precision from Head, Put and Upload,
	// and finer from listings. For Put and Upload it is the server's Date
	// header of the answer (the object is not read back), or the local
	// clock if the server sent none.
	LastModified time.Time
	// Metadata is the user metadata (x-amz-meta-*), with lower-case keys,
	// and ContentType the object's Content-Type. Only Head and Copy fill
	// them; listings carry neither, and Put and Upload do not echo them.
	Metadata    map[string]string
	ContentType string
}

// Meta is what a write stores with the object besides its bytes: user
// metadata (sent as x-amz-meta-*) and a Content-Type ("" lets the server
// choose; S3 then says binary/octet-stream).
type Meta struct {
	User        map[string]string
	ContentType string
}

// contentType is the Content-Type header of m, nil for none.
func (m Meta) contentType() *string {
	if m.ContentType == "" {
		return nil
	}
	return &m.ContentType
}

// unsignedPayload is an operation option sending the body with
// UNSIGNED-PAYLOAD; see New.
func unsignedPayload(o *s3.Options) {
	o.APIOptions = append(o.APIOptions, v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)
}

// CheckKey reports, without a request, whether key can name an object:
// nil, or an error matching ErrInvalidKey (ErrKeyTooLong for a key over
// S3's limit).
func (b *Bucket) CheckKey(key string) error {
	_, err := b.keys.object(key)
	return err
}

// Head returns the object's size, ETag, modification time and metadata.
// A missing object gives an error matching fs.ErrNotExist.
func (b *Bucket) Head(ctx context.Context, key string) (Object, error) {
	full, err := b.keys.object(key)
	if err != nil {
		return Object{}, fmt.Errorf("head: %w", err)
	}
	return b.head(ctx, key, full)
}

func (b *Bucket) head(ctx context.Context, key, full string) (Object, error) {
	out, err := b.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b.bucket, Key: &full})
	if err != nil {
		return Object{}, wrap("head", key, err)
	}
	return answered(key, aws.ToInt64(out.ContentLength), out.ETag, out.LastModified, out.Metadata, out.ContentType), nil
}

// answered is the object described by the headers of a HEAD or GET.
func answered(key string, size int64, etag *string, mod *time.Time, meta map[string]string, ctype *string) Object {
	return Object{
		Key:          key,
		Size:         size,
		ETag:         aws.ToString(etag),
		LastModified: aws.ToTime(mod),
		Metadata:     lowerKeys(meta),
		ContentType:  aws.ToString(ctype),
	}
}

// Get returns n bytes of the object from offset off (n < 0: to the end).
// A range reaching past the end is cut short at the end; one starting at
// or after the end gives an empty body. With ifMatch set (an ETag), the
// server refuses an object with another ETag: ErrPrecondition. n == 0
// returns an empty body without a request. The caller closes the body;
// errors while reading it are the transport's, unclassified.
func (b *Bucket) Get(ctx context.Context, key string, off, n int64, ifMatch string) (io.ReadCloser, error) {
	full, err := b.keys.object(key)
	if err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	if off < 0 {
		return nil, fmt.Errorf("get %s: negative offset %d: %w", key, off, iofs.ErrInvalid)
	}
	if n == 0 {
		return io.NopCloser(strings.NewReader("")), nil
	}
	in := &s3.GetObjectInput{Bucket: &b.bucket, Key: &full}
	switch {
	case n > 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", off, off+n-1))
	case off > 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", off))
	}
	if ifMatch != "" {
		in.IfMatch = &ifMatch
	}
	out, err := b.s3.GetObject(ctx, in)
	if err != nil {
		if isInvalidRange(err) {
			return io.NopCloser(strings.NewReader("")), nil
		}
		return nil, wrap("get", key, err)
	}
	if in.Range != nil && out.ContentRange == nil {
		// The server ignored the Range and sent the whole object.
		return skipLimit(out.Body, off, n)
	}
	return out.Body, nil
}

// Peek returns what Head does and the object's first max bytes (all of
// it when it is no longer), in one GET: the lookup of a small file that is
// read next (cat, a program opening what it just found) then costs one
// request, not two. An empty object is asked with a HEAD (a range of it
// is not satisfiable).
func (b *Bucket) Peek(ctx context.Context, key string, max int64) (Object, []byte, error) {
	full, err := b.keys.object(key)
	if err != nil {
		return Object{}, nil, fmt.Errorf("peek: %w", err)
	}
	if max <= 0 {
		return Object{}, nil, fmt.Errorf("peek %s: %d bytes: %w", key, max, iofs.ErrInvalid)
	}
	out, err := b.s3.GetObject(ctx, &s3.GetObjectInput{
		Bucket: &b.bucket, Key: &full, Range: aws.String(fmt.Sprintf("bytes=0-%d", max-1)),
	})
	if err != nil {
		if isInvalidRange(err) {
			o, err := b.head(ctx, key, full)
			return o, nil, err
		}
		return Object{}, nil, wrap("get", key, err)
	}
	defer out.Body.Close()
	size := int64(-1)
	if cr := aws.ToString(out.ContentRange); cr != "" {
		_, total, _ := strings.Cut(cr, "/") // "bytes 0-99/1234"
		if n, err := strconv.ParseInt(total, 10, 64); err == nil {
			size = n
		}
	} else if out.ContentLength != nil {
		size = *out.ContentLength // the whole object: the range was ignored
	}
	if size < 0 {
		return Object{}, nil, fmt.Errorf("get %s: an answer without the object's size (Content-Range %q)", key, aws.ToString(out.ContentRange))
	}
	data := make([]byte, min(size, max)) // exactly: callers keep it
	if _, err := io.ReadFull(out.Body, data); err != nil {
		return Object{}, nil, wrap("get", key, err)
	}
	return answered(key, size, out.ETag, out.LastModified, out.Metadata, out.ContentType), data, nil
}

// skipLimit returns rc past its first off bytes and cut to n (n < 0: to
// the end).
func skipLimit(rc io.ReadCloser, off, n int64) (io.ReadCloser, error) {
	if _, err := io.CopyN(io.Discard, rc, off); err != nil && err != io.EOF {
		rc.Close()
		return nil, err
	}
	if n < 0 {
		return rc, nil
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(rc, n), rc}, nil
}

// isInvalidRange reports a 416: the range starts at or after the end.
func isInvalidRange(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "InvalidRange" {
		return true
	}
	var re *smithyhttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusRequestedRangeNotSatisfiable
}

// Put writes size bytes of body as the object in one request, replacing
// any object under key, with meta. The SDK rewinds body to retry. Large
// objects go faster with Upload.
func (b *Bucket) Put(ctx context.Context, key string, body io.ReadSeeker, size int64, meta Meta) (Object, error) {
	return b.put(ctx, key, body, size, meta, writeCondition{})
}

// writeCondition is a precondition on the object a write replaces.
type writeCondition struct {
	ifMatch, ifNoneMatch string // "" for none
}

func (c writeCondition) apply(ifMatch, ifNoneMatch **string) {
	if c.ifMatch != "" {
		*ifMatch = aws.String(c.ifMatch)
	}
	if c.ifNoneMatch != "" {
		*ifNoneMatch = aws.String(c.ifNoneMatch)
	}
}

func (b *Bucket) put(ctx context.Context, key string, body io.ReadSeeker, size int64, meta Meta, cond writeCondition) (Object, error) {
	full, err := b.keys.object(key)
	if err != nil {
		return Object{}, fmt.Errorf("put: %w", err)
	}
	in := &s3.PutObjectInput{
		Bucket:        &b.bucket,
		Key:           &full,
		Body:          body,
		ContentLength: aws.Int64(size),
		Metadata:      meta.User,
		ContentType:   meta.contentType(),
	}
	cond.apply(&in.IfMatch, &in.IfNoneMatch)
	out, err := b.s3.PutObject(ctx, in, unsignedPayload)
	if err != nil {
		return Object{}, wrap("put", key, err)
	}
	return Object{
		Key:          key,
		Size:         size,
		ETag:         aws.ToString(out.ETag),
		LastModified: responseDate(out.ResultMetadata),
	}, nil
}

// Delete removes the object. Deleting a missing object succeeds (S3
// answers 204 either way), so Delete is idempotent.
func (b *Bucket) Delete(ctx context.Context, key string) error {
	full, err := b.keys.object(key)
	if err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	_, err = b.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &b.bucket, Key: &full})
	if err != nil {
		if classify(err) == iofs.ErrNotExist {
			return nil
		}
		return wrap("delete", key, err)
	}
	return nil
}

// responseDate is the Date header of the raw response in md, or now.
func responseDate(md middleware.Metadata) time.Time {
	if resp, ok := awsmiddleware.GetRawResponse(md).(*smithyhttp.Response); ok {
		if t, err := http.ParseTime(resp.Header.Get("Date")); err == nil {
			return t
		}
	}
	return time.Now().Truncate(time.Second)
}

// lowerKeys returns m with lower-case keys (nil for an empty m).
func lowerKeys(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[strings.ToLower(k)] = v
	}
	return out
}

// listed makes an Object of a listing entry, stripping the prefix. It
// reports false (and logs) for a key outside the prefix or equal to it.
func (b *Bucket) listed(key *string, size *int64, etag *string, mod *time.Time) (Object, bool) {
	rel, ok := b.keys.rel(aws.ToString(key))
	if !ok || rel == "" {
		if !ok {
			b.log.Warn("listing returned a key outside the workspace", "key", aws.ToString(key))
		}
		return Object{}, false
	}
	return Object{Key: rel, Size: aws.ToInt64(size), ETag: aws.ToString(etag), LastModified: aws.ToTime(mod)}, true
}
