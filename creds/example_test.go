package creds_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"

	"mount-ws/creds"
)

// A mount builds one Provider, and one S3 client from its pinned Scope.
func ExampleNewProvider() {
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))

	org, ws, err := creds.ParseSlug("acme/analytics")
	if err != nil {
		fmt.Println(err) // usage error
		return
	}
	tokens, err := creds.ResolveTokenSource(os.Getenv, "", logger)
	if err != nil {
		fmt.Println(err)
		return
	}
	p, err := creds.NewProvider(ctx, creds.Config{
		APIURL:      "https://api.example.com",
		Org:         org,
		Workspace:   ws,
		TokenSource: tokens,
		Version:     "1.0.0",
		Logger:      logger,
	})
	switch {
	case errors.Is(err, creds.ErrUnauthorized), errors.Is(err, creds.ErrToken):
		fmt.Println("fix the token:", err)
		return
	case err != nil:
		fmt.Println(err)
		return
	}
	defer p.Close()

	scope := p.Scope()
	client := s3.New(s3.Options{
		BaseEndpoint: aws.String(scope.Endpoint),
		Region:       scope.Region,
		UsePathStyle: true,
		Credentials:  p, // not wrapped in aws.CredentialsCache
		APIOptions:   []func(*middleware.Stack) error{p.AddReactiveRefresh},
	})
	_, _ = client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
		Bucket: aws.String(scope.Bucket),
		Prefix: aws.String(scope.Prefix),
	})
}
