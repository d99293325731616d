package csidriver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// clientTimeout bounds one publish or unpublish call, as kubelet's does.
const clientTimeout = 3 * time.Minute

// runPublish is "mount-ws-csi publish": NodePublishVolume as kubelet
// sends it for a PV with nodePublishSecretRef.
func runPublish(ctx context.Context, args []string, stdout io.Writer) error {
	fl := newFlagSet("mount-ws-csi publish")
	endpoint := fl.String("endpoint", "unix:///csi/csi.sock", "the plugin's socket")
	vol := fl.String("volume", "", "volume id: ORG/WS (or any id, with --attr workspace=ORG/WS)")
	target := fl.String("target", "", "where to mount (created if missing)")
	tokenFile := fl.String("token-file", "", "file holding the workspace API token (sent as the secret \"token\")")
	attrs := fl.StringArray("attr", nil, "volume attribute key=value (apiURL, workspace, uid, ...); repeatable")
	readOnly := fl.Bool("read-only", false, "publish read-only")
	if err := parseClientFlags(fl, args, stdout); err != nil {
		return err
	}
	if *vol == "" || *target == "" || *tokenFile == "" {
		return UsageError{errors.New("publish needs --volume, --target and --token-file")}
	}
	ctxAttrs, err := parseAttrs(*attrs)
	if err != nil {
		return err
	}
	tok, err := os.ReadFile(*tokenFile)
	if err != nil {
		return fmt.Errorf("read token: %w", err)
	}
	return call(ctx, *endpoint, func(ctx context.Context, c csi.NodeClient) error {
		_, err := c.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{
			VolumeId:   *vol,
			TargetPath: *target,
			VolumeCapability: &csi.VolumeCapability{
				AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
				AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER},
			},
			Readonly:      *readOnly,
			VolumeContext: ctxAttrs,
			Secrets:       map[string]string{"token": strings.TrimSpace(string(tok))},
		})
		if err == nil {
			fmt.Fprintf(stdout, "published %s at %s\n", *vol, *target)
		}
		return err
	})
}

// runUnpublish is "mount-ws-csi unpublish": NodeUnpublishVolume.
func runUnpublish(ctx context.Context, args []string, stdout io.Writer) error {
	fl := newFlagSet("mount-ws-csi unpublish")
	endpoint := fl.String("endpoint", "unix:///csi/csi.sock", "the plugin's socket")
	vol := fl.String("volume", "", "volume id, as published")
	target := fl.String("target", "", "the target path, as published")
	if err := parseClientFlags(fl, args, stdout); err != nil {
		return err
	}
	if *vol == "" || *target == "" {
		return UsageError{errors.New("unpublish needs --volume and --target")}
	}
	return call(ctx, *endpoint, func(ctx context.Context, c csi.NodeClient) error {
		_, err := c.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: *vol, TargetPath: *target})
		if err == nil {
			fmt.Fprintf(stdout, "unpublished %s from %s\n", *vol, *target)
		}
		return err
	})
}

// parseClientFlags parses a subcommand's flags; for --help it prints them
// and returns errHelp, which Run turns into success.
func parseClientFlags(fl *pflag.FlagSet, args []string, stdout io.Writer) error {
	err := fl.Parse(args)
	if errors.Is(err, pflag.ErrHelp) {
		fmt.Fprintf(stdout, "Usage of %s:\n%s", fl.Name(), fl.FlagUsages())
		return errHelp
	}
	if err != nil {
		return UsageError{err}
	}
	if fl.NArg() > 0 {
		return UsageError{fmt.Errorf("unexpected argument %q", fl.Arg(0))}
	}
	return nil
}

// call dials endpoint and runs f; a gRPC error comes back as
// "CODE: message".
func call(ctx context.Context, endpoint string, f func(context.Context, csi.NodeClient) error) error {
	path, err := socketPath(endpoint)
	if err != nil {
		return UsageError{err}
	}
	conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, clientTimeout)
	defer cancel()
	if err := f(ctx, csi.NewNodeClient(conn)); err != nil {
		if s, ok := status.FromError(err); ok {
			return fmt.Errorf("%s: %s", s.Code(), s.Message())
		}
		return err
	}
	return nil
}
