package csidriver

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/kubernetes-csi/csi-test/v5/pkg/sanity"
	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/gomega"
	"google.golang.org/grpc"
)

// TestSanity runs kubernetes-csi's sanity suite against the driver with
// real mounts of the test workspace.
//
// The driver is a node plugin only, so a minimal controller (fakeController,
// test code) answers on ControllerAddress: CreateVolume hands out the static
// handle csi/ws with the apiURL attribute. The suite runs its end-to-end
// node specs ("should work", "should be idempotent") only when the plugin
// advertises CONTROLLER_SERVICE; the driver does not (csi-spec.md), so the
// suite talks to the driver's own Identity and Node services through a
// server of this test whose GetPluginCapabilities adds CONTROLLER_SERVICE,
// the fake controller's. Everything else is the driver's answer.
//
// Skipped, and why (see the counts in the report Ginkgo prints):
//   - "Controller Service [Controller Server]" (the whole suite): it tests
//     the controller, here the test's fake, not the driver.
//   - Node "with single node multi writer capability": the driver does not
//     advertise SINGLE_NODE_MULTI_WRITER (csi-spec.md: VOLUME_MOUNT_GROUP only).
//   - NodeStageVolume, NodeUnstageVolume, NodeGetVolumeStats,
//     NodeExpandVolume, NodeGetVolumeHealth, NodeGetStorageHealth: not
//     advertised (the suite skips them itself).
//   - Group controller, snapshot metadata: not provided (skipped by the suite).
func TestSanity(t *testing.T) {
	d := startDriver(t, t.TempDir())
	sock, err := os.MkdirTemp("", "csi-sanity-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sock) })
	nodeAddr := serveForSanity(t, filepath.Join(sock, "node.sock"), func(s *grpc.Server) {
		csi.RegisterIdentityServer(s, sanityIdentity{d.Driver})
		csi.RegisterNodeServer(s, d.Driver)
	}, d.logCalls)
	controllerAddr := serveForSanity(t, filepath.Join(sock, "controller.sock"), func(s *grpc.Server) {
		csi.RegisterIdentityServer(s, sanityIdentity{d.Driver})
		csi.RegisterControllerServer(s, fakeController{apiURL: stack.APIURL()})
	}, nil)

	secrets := filepath.Join(t.TempDir(), "secrets.yaml")
	if err := os.WriteFile(secrets, []byte("NodePublishVolumeSecret:\n  token: "+testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	cfg := sanity.NewTestConfig()
	cfg.Address = nodeAddr
	cfg.ControllerAddress = controllerAddr
	cfg.TargetPath = filepath.Join(base, "target")
	cfg.StagingPath = filepath.Join(base, "staging")
	cfg.SecretsFile = secrets
	cfg.IdempotentCount = 2
	cfg.TestVolumeSize = 0 // workspaces have no size

	sc := sanity.GinkgoTest(&cfg)
	gomega.RegisterFailHandler(ginkgo.Fail)
	suiteCfg, reporterCfg := ginkgo.GinkgoConfiguration()
	suiteCfg.SkipStrings = append(suiteCfg.SkipStrings, `\[Controller Server\]`)
	ginkgo.RunSpecs(t, "mount-ws-csi sanity", suiteCfg, reporterCfg)
	sc.Finalize()
	if isMounted(t, filepath.Join(cfg.TargetPath, "target")) {
		t.Error("the suite left a mount behind")
	}
	// "should work" and "should be idempotent" mounted for real, and the
	// second publish of each was a republish.
	if logs := d.logs.String(); !strings.Contains(logs, "msg=mounted") || !strings.Contains(logs, `msg="republished`) {
		t.Errorf("the suite never mounted, or never republished; driver log:\n%s", logs)
	}
}

// serveForSanity serves register's services on a unix socket until the
// test ends.
func serveForSanity(t *testing.T, path string, register func(*grpc.Server), intercept grpc.UnaryServerInterceptor) string {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var opts []grpc.ServerOption
	if intercept != nil {
		opts = append(opts, grpc.UnaryInterceptor(intercept))
	}
	s := grpc.NewServer(opts...)
	register(s)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Serve(l)
	}()
	t.Cleanup(func() {
		s.Stop()
		<-done
	})
	return "unix://" + path
}

// sanityIdentity is the driver's Identity service plus CONTROLLER_SERVICE,
// which the fake controller provides.
type sanityIdentity struct{ *Driver }

func (s sanityIdentity) GetPluginCapabilities(ctx context.Context, req *csi.GetPluginCapabilitiesRequest) (*csi.GetPluginCapabilitiesResponse, error) {
	resp, err := s.Driver.GetPluginCapabilities(ctx, req)
	if err != nil {
		return nil, err
	}
	resp.Capabilities = append(resp.Capabilities, &csi.PluginCapability{Type: &csi.PluginCapability_Service_{
		Service: &csi.PluginCapability_Service{Type: csi.PluginCapability_Service_CONTROLLER_SERVICE},
	}})
	return resp, nil
}

// fakeController creates nothing: every volume is the test workspace.
type fakeController struct {
	csi.UnimplementedControllerServer
	apiURL string
}

func (f fakeController) CreateVolume(_ context.Context, req *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	return &csi.CreateVolumeResponse{Volume: &csi.Volume{
		VolumeId:      "csi/ws",
		CapacityBytes: req.GetCapacityRange().GetRequiredBytes(),
		VolumeContext: map[string]string{"apiURL": f.apiURL},
	}}, nil
}

func (fakeController) DeleteVolume(context.Context, *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	return &csi.DeleteVolumeResponse{}, nil
}

func (fakeController) ControllerGetCapabilities(context.Context, *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
	return &csi.ControllerGetCapabilitiesResponse{Capabilities: []*csi.ControllerServiceCapability{{
		Type: &csi.ControllerServiceCapability_Rpc{Rpc: &csi.ControllerServiceCapability_RPC{Type: csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME}},
	}}}, nil
}
