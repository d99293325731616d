package csidriver

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
)

func TestParseVolume(t *testing.T) {
	mount := func(flags []string, group string) *csi.VolumeCapability {
		return &csi.VolumeCapability{
			AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{MountFlags: flags, VolumeMountGroup: group}},
			AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER},
		}
	}
	withMode := func(m csi.VolumeCapability_AccessMode_Mode) *csi.VolumeCapability {
		c := mount(nil, "")
		c.AccessMode.Mode = m
		return c
	}
	block := &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
	}
	tests := []struct {
		name      string
		id        string
		attrs     map[string]string
		cap       *csi.VolumeCapability
		readOnly  bool
		wantWS    string
		wantRO    bool
		wantFlags []string
		wantErr   string
	}{
		{name: "handle is the workspace", id: "acme/data", cap: mount(nil, ""), wantWS: "acme/data"},
		{name: "workspace attribute wins", id: "pv-1", attrs: map[string]string{"workspace": "acme/data"}, cap: mount(nil, ""), wantWS: "acme/data"},
		{name: "bad handle", id: "pv-1", cap: mount(nil, ""), wantErr: "ORG/WS"},
		{name: "pod info ignored", id: "a/b", attrs: map[string]string{"csi.storage.k8s.io/pod.name": "p"}, cap: mount(nil, ""), wantWS: "a/b"},
		{name: "unknown attribute", id: "a/b", attrs: map[string]string{"tokenFile": "/x"}, cap: mount(nil, ""), wantErr: `unknown volume attribute "tokenFile"`},
		{name: "attributes in a fixed order", id: "a/b", attrs: map[string]string{"xattr": "1", "uid": "1000", "metadataTTL": "0", "fileMode": "640"}, cap: mount(nil, ""),
			wantWS: "a/b", wantFlags: []string{"--uid=1000", "--file-mode=0640", "--metadata-ttl=0", "--xattr=true"}},
		{name: "bad uid", id: "a/b", attrs: map[string]string{"uid": "-1"}, cap: mount(nil, ""), wantErr: "attribute uid=-1"},
		{name: "bad duration", id: "a/b", attrs: map[string]string{"metadataTTL": "soon"}, cap: mount(nil, ""), wantErr: "metadataTTL"},
		{name: "mount options", id: "a/b", cap: mount([]string{"ro,uid=5", "xattr", "cache_size_mib=64"}, ""), wantWS: "a/b", wantRO: true,
			wantFlags: []string{"--uid=5", "--cache-size-mib=64", "--xattr=true"}},
		{name: "forbidden mount option", id: "a/b", cap: mount([]string{"token_file=/etc/shadow"}, ""), wantErr: `mount option "token_file=/etc/shadow" is not allowed`},
		{name: "api_url not a mount option", id: "a/b", cap: mount([]string{"api_url=http://x"}, ""), wantErr: "not allowed"},
		{name: "allow_root refused", id: "a/b", cap: mount([]string{"allow_root"}, ""), wantErr: "not allowed"},
		{name: "value needed", id: "a/b", cap: mount([]string{"uid"}, ""), wantErr: "not allowed"},
		{name: "conflict", id: "a/b", attrs: map[string]string{"uid": "1"}, cap: mount([]string{"uid=2"}, ""), wantErr: "conflicts"},
		{name: "same value twice", id: "a/b", attrs: map[string]string{"uid": "1"}, cap: mount([]string{"uid=1"}, ""), wantWS: "a/b", wantFlags: []string{"--uid=1"}},
		{name: "fsGroup", id: "a/b", cap: mount(nil, "2000"), wantWS: "a/b", wantFlags: []string{"--gid=2000", "--file-mode=0660", "--dir-mode=0770"}},
		{name: "fsGroup keeps set modes", id: "a/b", attrs: map[string]string{"dirMode": "2775"}, cap: mount(nil, "2000"), wantWS: "a/b", wantFlags: []string{"--gid=2000", "--file-mode=0660", "--dir-mode=2775"}},
		{name: "readonly flag", id: "a/b", cap: mount(nil, ""), readOnly: true, wantWS: "a/b", wantRO: true},
		{name: "reader-only mode", id: "a/b", cap: withMode(csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY), wantWS: "a/b", wantRO: true},
		{name: "single writer mode", id: "a/b", cap: withMode(csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER), wantWS: "a/b"},
		{name: "unknown mode", id: "a/b", cap: withMode(csi.VolumeCapability_AccessMode_UNKNOWN), wantErr: "access mode"},
		{name: "block", id: "a/b", cap: block, wantErr: "block volumes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := &csi.NodePublishVolumeRequest{VolumeId: tt.id, VolumeContext: tt.attrs, VolumeCapability: tt.cap, Readonly: tt.readOnly}
			v, err := parseVolume(req, "https://api.example.com")
			if tt.wantErr != "" {
				if !errors.As(err, new(invalidError)) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if v.workspace != tt.wantWS || v.readOnly != tt.wantRO || !slices.Equal(v.flags, tt.wantFlags) {
				t.Errorf("got workspace %q ro %v flags %q; want %q %v %q", v.workspace, v.readOnly, v.flags, tt.wantWS, tt.wantRO, tt.wantFlags)
			}
		})
	}
}

func TestNoAPIURL(t *testing.T) {
	req := &csi.NodePublishVolumeRequest{VolumeId: "a/b", VolumeCapability: &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
	}}
	if _, err := parseVolume(req, ""); err == nil || !strings.Contains(err.Error(), "apiURL") {
		t.Errorf("no API URL: %v", err)
	}
}

func TestVolumeNameDiffersPerTarget(t *testing.T) {
	a, b := volumeName("acme/data", "/k/pods/1/mount"), volumeName("acme/data", "/k/pods/2/mount")
	if a == b || !strings.HasPrefix(a, "acme-data-") || strings.ContainsAny(a, "/ ") {
		t.Errorf("names %q and %q", a, b)
	}
	if volumeName("../../x", "/t") == volumeName("x", "/t") || strings.Contains(volumeName("../../x", "/t"), "/") {
		t.Error("volume ids with path elements are not made safe")
	}
}
