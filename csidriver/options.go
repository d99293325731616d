package csidriver

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"

	"mount-ws/creds"
)

// podInfoPrefix marks the attributes kubelet adds itself (podInfoOnMount,
// ephemeral volumes); they are accepted and ignored.
const podInfoPrefix = "csi.storage.k8s.io/"

// option is one setting a volume may choose: its volume attribute name,
// its mount option name (a PV's mountOptions), the mount-ws flag it
// becomes, and how its value is checked. A check gets the value as given
// and returns it as mount-ws wants it.
type option struct {
	attr, mountOpt, flag string
	check                func(string) (string, error)
}

// options is the allowlist: nothing else reaches mount-ws's command line
// from a request. API URL, token file, log and cache paths, foreground
// and allow_root are the driver's to set, never a volume's.
var options = []option{
	{"uid", "uid", "--uid", checkUint},
	{"gid", "gid", "--gid", checkUint},
	{"fileMode", "file_mode", "--file-mode", checkMode},
	{"dirMode", "dir_mode", "--dir-mode", checkMode},
	{"metadataTTL", "metadata_ttl", "--metadata-ttl", checkDuration},
	{"prefetchMemoryMiB", "prefetch_memory_mib", "--prefetch-memory-mib", checkUint},
	{"cacheSizeMiB", "cache_size_mib", "--cache-size-mib", checkUint},
	{"metricsAddr", "metrics_addr", "--metrics-addr", checkAddr},
	{"xattr", "xattr", "--xattr", checkBool},
}

// volume is what a NodePublishVolume request asks for, checked.
type volume struct {
	id        string // the request's volume id
	workspace string // ORG/WS
	apiURL    string
	readOnly  bool
	flags     []string // mount-ws flags from attributes, mount options and the mount group, in a fixed order
}

// invalidError is a request the driver refuses (InvalidArgument); its
// text is the whole message.
type invalidError struct{ msg string }

func (e invalidError) Error() string { return e.msg }

func invalidf(format string, args ...any) error {
	return invalidError{fmt.Sprintf(format, args...)}
}

// parseVolume checks a publish request's volume id, capability,
// attributes and mount options against the policy of csi-spec.md and
// returns what to mount. defaultAPIURL is used without an apiURL
// attribute. It never looks at the secrets.
func parseVolume(req *csi.NodePublishVolumeRequest, defaultAPIURL string) (volume, error) {
	v := volume{id: req.GetVolumeId(), apiURL: defaultAPIURL, readOnly: req.GetReadonly()}
	capability := req.GetVolumeCapability()
	if capability.GetBlock() != nil {
		return v, invalidf("block volumes are not supported: mount-ws volumes are file systems (use volumeMode: Filesystem)")
	}
	mnt := capability.GetMount()
	if mnt == nil {
		return v, invalidf("volume capability must be a mount volume")
	}
	if fsType := mnt.GetFsType(); fsType != "" && fsType != "fuse.mount-ws" && fsType != "mount-ws" {
		return v, invalidf("fsType %q is not supported: leave it empty", fsType)
	}
	switch mode := capability.GetAccessMode().GetMode(); mode {
	case csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY, csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY:
		v.readOnly = true
	case csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER, csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER,
		csi.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER, csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER,
		csi.VolumeCapability_AccessMode_MULTI_NODE_SINGLE_WRITER:
	default:
		return v, invalidf("access mode %s is not supported", mode)
	}

	values := map[string]string{} // mount-ws flag -> value
	source := map[string]string{} // mount-ws flag -> where its value came from, for messages
	set := func(o option, raw, from string) error {
		val, err := o.check(raw)
		if err != nil {
			return invalidf("%s: %v", from, err)
		}
		if prev, ok := values[o.flag]; ok && prev != val {
			return invalidf("%s conflicts with %s", from, source[o.flag])
		}
		values[o.flag], source[o.flag] = val, from
		return nil
	}

	v.workspace = v.id
	attrs := req.GetVolumeContext()
	for _, k := range slices.Sorted(maps.Keys(attrs)) {
		val := attrs[k]
		switch {
		case strings.HasPrefix(k, podInfoPrefix):
		case k == "workspace":
			v.workspace = val
		case k == "apiURL":
			v.apiURL = val
		default:
			i := slices.IndexFunc(options, func(o option) bool { return o.attr == k })
			if i < 0 {
				return v, invalidf("unknown volume attribute %q (known: apiURL, workspace, %s)", k, strings.Join(attrNames(), ", "))
			}
			if err := set(options[i], val, "attribute "+k+"="+val); err != nil {
				return v, err
			}
		}
	}
	if _, _, err := creds.ParseSlug(v.workspace); err != nil {
		return v, invalidf("volume %q: %v (set volumeHandle, or the workspace attribute, to ORG/WS)", v.id, err)
	}
	if v.apiURL == "" {
		return v, invalidf("no apiURL attribute and the driver has no --default-api-url")
	}
	if strings.HasPrefix(v.apiURL, "-") {
		return v, invalidf("apiURL %q is not a URL", v.apiURL)
	}

	for _, list := range mnt.GetMountFlags() {
		for _, mo := range strings.Split(list, ",") {
			mo = strings.TrimSpace(mo)
			name, val, hasVal := strings.Cut(mo, "=")
			switch {
			case mo == "":
				continue
			case name == "ro" && !hasVal:
				v.readOnly = true
				continue
			case name == "xattr" && !hasVal:
				val = "true"
			case !hasVal:
				name = "" // every other allowed option needs a value
			}
			i := slices.IndexFunc(options, func(o option) bool { return o.mountOpt == name })
			if i < 0 {
				return v, invalidf("mount option %q is not allowed (allowed: ro, %s)", mo, strings.Join(mountOptNames(), ", "))
			}
			if err := set(options[i], val, "mount option "+mo); err != nil {
				return v, err
			}
		}
	}

	// fsGroup: the group owns what stores no owner, and may write.
	if g := capability.GetMount().GetVolumeMountGroup(); g != "" {
		if err := set(options[1], g, "volume mount group (fsGroup) "+g); err != nil {
			return v, err
		}
		if _, ok := values["--file-mode"]; !ok {
			values["--file-mode"] = "0660"
		}
		if _, ok := values["--dir-mode"]; !ok {
			values["--dir-mode"] = "0770"
		}
	}
	for _, o := range options {
		if val, ok := values[o.flag]; ok {
			// flag=value, so no value is ever read as a flag of its own.
			v.flags = append(v.flags, o.flag+"="+val)
		}
	}
	return v, nil
}

func attrNames() []string {
	var s []string
	for _, o := range options {
		s = append(s, o.attr)
	}
	return s
}

func mountOptNames() []string {
	var s []string
	for _, o := range options {
		if o.mountOpt == "xattr" {
			s = append(s, "xattr")
			continue
		}
		s = append(s, o.mountOpt+"=")
	}
	return s
}

func checkUint(s string) (string, error) {
	if _, err := strconv.ParseUint(s, 10, 32); err != nil {
		return "", fmt.Errorf("want a non-negative integer")
	}
	return s, nil
}

func checkMode(s string) (string, error) {
	m, err := strconv.ParseUint(strings.TrimPrefix(s, "0o"), 8, 32)
	if err != nil || m > 0o7777 {
		return "", fmt.Errorf("want octal permissions like 0644")
	}
	return fmt.Sprintf("%04o", m), nil
}

func checkDuration(s string) (string, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return "", fmt.Errorf("want a duration like 10s or 0")
	}
	return s, nil
}

func checkBool(s string) (string, error) {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return "", fmt.Errorf("want true or false")
	}
	return strconv.FormatBool(b), nil
}

// checkAddr wants HOST:PORT or PORT; mount-ws checks it further.
func checkAddr(s string) (string, error) {
	if s == "" || strings.ContainsAny(s, " \t\n/") || strings.HasPrefix(s, "-") {
		return "", fmt.Errorf("want HOST:PORT or PORT")
	}
	return s, nil
}
