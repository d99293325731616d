package bucket_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"mount-ws/bucket"
	"mount-ws/bucket/buckettest"
	"mount-ws/internal/wsstack"
)

// The gateway runs once per process: every test shares this stack, each
// on a prefix of its own under the workspace.
var stack *wsstack.Stack

const (
	testOrg, testWS = "acme", "bucket"
	testToken       = "token-bucket-tests"
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "bucket-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	stack, err = wsstack.Start(context.Background(), wsstack.Config{
		DataDir: dir,
		Workspaces: []wsstack.Workspace{
			{Org: testOrg, WS: testWS, Tokens: []string{testToken}},
			{Org: testOrg, WS: "other", Tokens: []string{"token-other"}},
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start stack:", err)
		return 1
	}
	code := m.Run()
	if err := stack.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "close stack:", err)
		code = 1
	}
	return code
}

// mint fetches workspace credentials from the API emulator over HTTP.
func mint(t testing.TB, org, ws, token string) wsstack.CredentialsResponse {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, stack.APIURL()+"/api/v1/org/"+org+"/ws/"+ws+"/storage/credentials", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("credentials for %s/%s: status %d", org, ws, resp.StatusCode)
	}
	var c wsstack.CredentialsResponse
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
		t.Fatal(err)
	}
	return c
}

// gatewayConfig is a Config for fresh workspace credentials, on a prefix
// of its own under the workspace prefix: the test's name and a random part,
// so that runs with -count > 1 start empty too.
func gatewayConfig(t *testing.T) bucket.Config {
	t.Helper()
	c := mint(t, testOrg, testWS, testToken)
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '_'
	}, t.Name())
	return bucket.Config{
		Bucket:      c.Bucket,
		Prefix:      c.Prefix + name + "-" + rand.Text()[:8] + "/",
		Endpoint:    c.Endpoint,
		Region:      c.Region,
		Credentials: credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, c.SessionToken),
	}
}

func newGateway(t *testing.T, tune ...func(*bucket.Config)) *bucket.Bucket {
	t.Helper()
	cfg := gatewayConfig(t)
	for _, f := range tune {
		f(&cfg)
	}
	b, err := bucket.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConformanceGateway(t *testing.T) {
	t.Parallel()
	buckettest.Run(t, gatewayConfig)
}

func TestConformanceFake(t *testing.T) {
	t.Parallel()
	buckettest.Run(t, func(t *testing.T) bucket.Config {
		cfg, _ := buckettest.NewFakeConfig(t)
		return cfg
	})
}
