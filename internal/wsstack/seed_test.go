package wsstack

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"mount-ws/internal/detdata"
)

func TestSeedIsCompleteAndIdempotent(t *testing.T) {
	ctx := context.Background()
	w := Workspace{Org: "acme", WS: "seeded", Tokens: []string{tokenA}}
	if err := testStack.AddWorkspace(ctx, w); err != nil {
		t.Fatal(err)
	}
	// The real demo set with a smaller large file (the race detector makes
	// generating 256 MiB slow); multipart is still used above 16 MiB.
	const large = 40 << 20
	set := demoSet(large)
	n, err := testStack.seed(ctx, w, set)
	if err != nil {
		t.Fatal(err)
	}
	if n != len(set) {
		t.Errorf("first seed wrote %d of %d objects", n, len(set))
	}
	if n, err := testStack.seed(ctx, w, set); err != nil || n != 0 {
		t.Errorf("second seed wrote %d objects (%v), want 0", n, err)
	}

	// Read back as the workspace would: through its own credentials.
	c := mint(t, "acme", "seeded", tokenA)
	cl := clientFor(c)
	sizes := map[string]int64{}
	p := s3.NewListObjectsV2Paginator(cl, &s3.ListObjectsV2Input{Bucket: &c.Bucket, Prefix: &c.Prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			sizes[strings.TrimPrefix(aws.ToString(o.Key), c.Prefix)] = aws.ToInt64(o.Size)
		}
	}
	for _, o := range set {
		if sizes[o.key] != o.length() {
			t.Errorf("%s: size %d, want %d", o.key, sizes[o.key], o.length())
		}
	}
	if len(sizes) != len(set) || len(set) < DemoSmallFiles+10 {
		t.Errorf("listed %d objects, set has %d", len(sizes), len(set))
	}
	out, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: &c.Bucket, Key: aws.String(c.Prefix + "large/weights.bin")})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Body.Close()
	if err := detdata.Verify(out.Body, DemoLargeSeed, large); err != nil {
		t.Errorf("large file: %v", err)
	}
}
