package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// verdict is the comparison of the bucket with the model.
type verdict struct {
	Objects       int   `json:"objects"`         // objects in the workspace at the end
	CheckedBytes  int64 `json:"checked_bytes"`   // bytes compared with the model
	Paths         int   `json:"paths"`           // paths the workload ever wrote
	Uncertain     int   `json:"uncertain"`       // paths with more than one allowed content
	SavedAfterEIO int   `json:"saved_after_eio"` // paths whose last close/fsync failed, found saved
	// BytesLost is the size of what the model says must be there and is
	// not (missing, or other bytes).
	BytesLost  int64    `json:"bytes_lost"`
	Mismatches []string `json:"mismatches,omitempty"`
	// Unexpected are objects the model does not allow.
	Unexpected []string `json:"unexpected,omitempty"`
	// IncompleteUploads are multipart uploads left in the bucket (aborted
	// at the next mount with the same cache directory; not a failure).
	IncompleteUploads int `json:"incomplete_uploads"`
}

// checkBucket lists the workspace through the root client and compares
// every object with the model: paths written by the workload, the seeded
// files and the workers' directory markers.
func checkBucket(ctx context.Context, cl *s3.Client, bucket, prefix string,
	paths map[string]pathState, seeded []roObject, markers []string) (verdict, error) {
	var v verdict
	want := make(map[string]pathState, len(paths)+len(seeded))
	for p, st := range paths {
		want[p] = st
	}
	for _, o := range seeded {
		want[o.Path] = pathState{Possible: []content{{Segs: []segment{o.Seg}}}}
	}
	found := make(map[string]bool)
	pg := s3.NewListObjectsV2Paginator(cl, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: &prefix})
	for pg.HasMorePages() {
		page, err := pg.NextPage(ctx)
		if err != nil {
			return v, fmt.Errorf("list the bucket: %w", err)
		}
		for _, o := range page.Contents {
			v.Objects++
			rel := strings.TrimPrefix(aws.ToString(o.Key), prefix)
			found[rel] = true
			if slices.Contains(markers, rel) {
				continue
			}
			st, ok := want[rel]
			if !ok || (len(st.Possible) == 1 && st.Possible[0].Absent) {
				v.Unexpected = append(v.Unexpected, fmt.Sprintf("%s (%d bytes)", rel, aws.ToInt64(o.Size)))
				continue
			}
			b, err := getAll(ctx, cl, bucket, aws.ToString(o.Key))
			if err != nil {
				return v, err
			}
			v.CheckedBytes += int64(len(b))
			if !slices.ContainsFunc(st.Possible, func(c content) bool { return c.matches(b) }) {
				v.BytesLost += largest(st.Possible)
				v.Mismatches = append(v.Mismatches, fmt.Sprintf("%s: %d bytes in the bucket, none of %v", rel, len(b), st.Possible))
			} else if st.Pending {
				v.SavedAfterEIO++
			}
		}
	}
	for p, st := range want {
		if len(st.Possible) > 1 {
			v.Uncertain++
		}
		if !found[p] && !st.mayBeAbsent() {
			v.BytesLost += largest(st.Possible)
			v.Mismatches = append(v.Mismatches, fmt.Sprintf("%s: missing, want %v", p, st.Possible))
		}
	}
	for _, m := range markers {
		if !found[m] {
			v.Mismatches = append(v.Mismatches, fmt.Sprintf("%s: directory marker missing", m))
		}
	}
	v.Paths = len(paths)
	slices.Sort(v.Mismatches)
	slices.Sort(v.Unexpected)
	up, err := cl.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &bucket, Prefix: &prefix})
	if err != nil {
		return v, fmt.Errorf("list multipart uploads: %w", err)
	}
	v.IncompleteUploads = len(up.Uploads)
	return v, nil
}

func largest(cs []content) int64 {
	var n int64
	for _, c := range cs {
		n = max(n, c.size())
	}
	return n
}

func getAll(ctx context.Context, cl *s3.Client, bucket, key string) ([]byte, error) {
	out, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &key})
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	return b, nil
}
