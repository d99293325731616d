// Package kubernetes_test checks the manifests under deploy/kubernetes
// without a cluster: every document decodes strictly into its Kubernetes
// API type (so a misspelt field fails here, not at kubectl apply), and the
// objects agree with each other and with the driver's interface
// (issue 11): one driver name everywhere, the socket paths
// kubelet and the registrar use, the Secret references, the PV/PVC
// bindings, and no real token in any file.
package kubernetes_test

import (
	"encoding/base64"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	"sigs.k8s.io/yaml"

	"mount-ws/creds"
)

// The driver's interface, as the node plugin implements it.
const (
	driverName      = "mount-ws.csi.workspace"
	namespace       = "mount-ws"
	daemonSetName   = "mount-ws-csi-node"
	driverContainer = "mount-ws-csi"
	registrar       = "node-driver-registrar"
	kubeletDir      = "/var/lib/kubelet"
	socketHostDir   = kubeletDir + "/plugins/" + driverName + "/"
	socketDir       = "/csi"
	tokenDir        = "/run/mount-ws-csi"
	stateDir        = "/var/lib/mount-ws-csi"
)

// doc is one YAML document of one file, decoded into its API type.
type doc struct {
	where string // file#index, for messages
	kind  string // apiVersion + " " + kind
	obj   any    // a pointer to the API type
}

// kustomization holds the fields of kustomize's Kustomization that these
// manifests use; add a field here before using it in kustomization.yaml
// (the strict decoding refuses any other).
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Resources  []string `json:"resources"`
}

// newObject returns an empty object of the type that apiVersion and kind
// name, or nil for a kind these manifests are not expected to hold.
func newObject(apiVersion, kind string) any {
	switch apiVersion + " " + kind {
	case "v1 Namespace":
		return &corev1.Namespace{}
	case "v1 ServiceAccount":
		return &corev1.ServiceAccount{}
	case "v1 Secret":
		return &corev1.Secret{}
	case "v1 PersistentVolume":
		return &corev1.PersistentVolume{}
	case "v1 PersistentVolumeClaim":
		return &corev1.PersistentVolumeClaim{}
	case "v1 Pod":
		return &corev1.Pod{}
	case "apps/v1 DaemonSet":
		return &appsv1.DaemonSet{}
	case "storage.k8s.io/v1 CSIDriver":
		return &storagev1.CSIDriver{}
	case "rbac.authorization.k8s.io/v1 Role":
		return &rbacv1.Role{}
	case "rbac.authorization.k8s.io/v1 ClusterRole":
		return &rbacv1.ClusterRole{}
	case "rbac.authorization.k8s.io/v1 RoleBinding":
		return &rbacv1.RoleBinding{}
	case "rbac.authorization.k8s.io/v1 ClusterRoleBinding":
		return &rbacv1.ClusterRoleBinding{}
	case "kustomize.config.k8s.io/v1beta1 Kustomization":
		return &kustomization{}
	}
	return nil
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// loadDocs decodes every document of every .yaml file under dir, failing
// the test on any document that does not decode strictly.
func loadDocs(t *testing.T, dir string) []doc {
	t.Helper()
	var docs []doc
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".yaml") {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, text := range docSeparator.Split(string(data), -1) {
			where := fmt.Sprintf("%s#%d", filepath.ToSlash(path), i)
			if d, ok := decodeDoc(t, where, []byte(text)); ok {
				docs = append(docs, d)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("read manifests: %v", err)
	}
	if len(docs) == 0 {
		t.Fatalf("no manifests under %s", dir)
	}
	return docs
}

// decodeDoc decodes one document; ok is false for an empty one (only
// comments), and on an error, which it reports.
func decodeDoc(t *testing.T, where string, text []byte) (d doc, ok bool) {
	t.Helper()
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	var raw any
	if err := yaml.Unmarshal(text, &raw); err != nil {
		t.Errorf("%s: %v", where, err)
		return doc{}, false
	}
	if raw == nil {
		return doc{}, false
	}
	if err := yaml.Unmarshal(text, &head); err != nil {
		t.Errorf("%s: %v", where, err)
		return doc{}, false
	}
	obj := newObject(head.APIVersion, head.Kind)
	if obj == nil {
		t.Errorf("%s: unexpected kind %q of apiVersion %q (teach newObject about it)", where, head.Kind, head.APIVersion)
		return doc{}, false
	}
	if err := yaml.UnmarshalStrict(text, obj); err != nil {
		t.Errorf("%s: %s: %v", where, head.Kind, err)
		return doc{}, false
	}
	return doc{where: where, kind: head.APIVersion + " " + head.Kind, obj: obj}, true
}

// item is one decoded object of type T and where it came from.
type item[T any] struct {
	where string
	v     *T
}

// objects returns the documents holding a T.
func objects[T any](docs []doc) []item[T] {
	var out []item[T]
	for _, d := range docs {
		if v, ok := d.obj.(*T); ok {
			out = append(out, item[T]{d.where, v})
		}
	}
	return out
}

func TestManifests(t *testing.T) {
	docs := loadDocs(t, ".")
	if t.Failed() {
		t.FailNow()
	}

	t.Run("CSIDriver", func(t *testing.T) { checkCSIDriver(t, docs) })
	t.Run("DaemonSet", func(t *testing.T) { checkDaemonSet(t, docs) })
	t.Run("RBAC", func(t *testing.T) { checkRBAC(t, docs) })
	t.Run("PersistentVolumes", func(t *testing.T) { checkPersistentVolumes(t, docs) })
	t.Run("Pods", func(t *testing.T) { checkPods(t, docs) })
	t.Run("Images", func(t *testing.T) { checkImages(t, docs) })
	t.Run("NoRealTokens", func(t *testing.T) { checkNoRealTokens(t, docs, ".") })
	t.Run("Kustomization", func(t *testing.T) { checkKustomization(t, docs) })
}

func checkCSIDriver(t *testing.T, docs []doc) {
	drivers := objects[storagev1.CSIDriver](docs)
	if len(drivers) != 1 {
		t.Fatalf("want exactly one CSIDriver, have %d", len(drivers))
	}
	d := drivers[0]
	if d.v.Name != driverName {
		t.Errorf("%s: CSIDriver %q, want %q", d.where, d.v.Name, driverName)
	}
	s := d.v.Spec
	if s.AttachRequired == nil || *s.AttachRequired {
		t.Errorf("%s: attachRequired must be false", d.where)
	}
	if s.PodInfoOnMount == nil || !*s.PodInfoOnMount {
		t.Errorf("%s: podInfoOnMount must be true", d.where)
	}
	if s.RequiresRepublish == nil || !*s.RequiresRepublish {
		t.Errorf("%s: requiresRepublish must be true (rotated tokens reach live mounts)", d.where)
	}
	if s.FSGroupPolicy == nil || *s.FSGroupPolicy != storagev1.NoneFSGroupPolicy {
		t.Errorf("%s: fsGroupPolicy must be None (kubelet must never chown a workspace)", d.where)
	}
	want := []storagev1.VolumeLifecycleMode{storagev1.VolumeLifecyclePersistent, storagev1.VolumeLifecycleEphemeral}
	if !slices.Equal(s.VolumeLifecycleModes, want) {
		t.Errorf("%s: volumeLifecycleModes %v, want %v", d.where, s.VolumeLifecycleModes, want)
	}
}

func checkDaemonSet(t *testing.T, docs []doc) {
	var ds *item[appsv1.DaemonSet]
	for _, d := range objects[appsv1.DaemonSet](docs) {
		if d.v.Name == daemonSetName {
			ds = &d
		}
	}
	if ds == nil {
		t.Fatalf("no DaemonSet %q", daemonSetName)
	}
	where, spec := ds.where, ds.v.Spec.Template.Spec
	if ds.v.Namespace != namespace {
		t.Errorf("%s: namespace %q, want %q", where, ds.v.Namespace, namespace)
	}
	if !slices.ContainsFunc(objects[corev1.Namespace](docs), func(n item[corev1.Namespace]) bool { return n.v.Name == namespace }) {
		t.Errorf("no Namespace %q", namespace)
	}
	if !slices.ContainsFunc(objects[corev1.ServiceAccount](docs), func(sa item[corev1.ServiceAccount]) bool {
		return sa.v.Name == spec.ServiceAccountName && sa.v.Namespace == ds.v.Namespace
	}) {
		t.Errorf("%s: serviceAccountName %q names no ServiceAccount in namespace %q", where, spec.ServiceAccountName, ds.v.Namespace)
	}
	if ds.v.Spec.UpdateStrategy.Type != appsv1.OnDeleteDaemonSetStrategyType {
		t.Errorf("%s: updateStrategy %q, want OnDelete (a rolling update ends every mount of a node)", where, ds.v.Spec.UpdateStrategy.Type)
	}
	if spec.PriorityClassName != "system-node-critical" {
		t.Errorf("%s: priorityClassName %q, want system-node-critical", where, spec.PriorityClassName)
	}
	if !slices.ContainsFunc(spec.Tolerations, func(tol corev1.Toleration) bool {
		return tol.Key == "" && tol.Operator == corev1.TolerationOpExists && tol.Effect == ""
	}) {
		t.Errorf("%s: no toleration of every taint (operator: Exists, no key, no effect)", where)
	}
	if g := spec.TerminationGracePeriodSeconds; g == nil || *g < 300 {
		t.Errorf("%s: terminationGracePeriodSeconds must leave uploads at least 5 minutes", where)
	}

	// Each volume by name, and the host path of each hostPath volume.
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
	}
	hostPath := func(name string) string {
		if v, ok := volumes[name]; ok && v.HostPath != nil {
			return v.HostPath.Path
		}
		return ""
	}
	container := func(name string) *corev1.Container {
		for i := range spec.Containers {
			if spec.Containers[i].Name == name {
				return &spec.Containers[i]
			}
		}
		t.Fatalf("%s: no container %q", where, name)
		return nil
	}
	// mountOf returns the container's mount at path, failing when none.
	mountOf := func(c *corev1.Container, path string) corev1.VolumeMount {
		for _, m := range c.VolumeMounts {
			if m.MountPath == path {
				return m
			}
		}
		t.Errorf("%s: container %s mounts nothing at %s", where, c.Name, path)
		return corev1.VolumeMount{}
	}

	drv := container(driverContainer)
	if drv.SecurityContext == nil || drv.SecurityContext.Privileged == nil || !*drv.SecurityContext.Privileged {
		t.Errorf("%s: container %s must be privileged (/dev/fuse, mount, Bidirectional)", where, drv.Name)
	}
	if drv.Image != "mount-ws-csi:dev" {
		t.Errorf("%s: container %s image %q, want mount-ws-csi:dev", where, drv.Name, drv.Image)
	}
	if m := mountOf(drv, kubeletDir); hostPath(m.Name) != kubeletDir {
		t.Errorf("%s: %s is not hostPath %s", where, kubeletDir, kubeletDir)
	} else if m.MountPropagation == nil || *m.MountPropagation != corev1.MountPropagationBidirectional {
		t.Errorf("%s: %s must be mounted with Bidirectional propagation, or pods never see the FUSE mounts", where, kubeletDir)
	}
	if m := mountOf(drv, "/dev/fuse"); hostPath(m.Name) != "/dev/fuse" {
		t.Errorf("%s: /dev/fuse is not hostPath /dev/fuse", where)
	}
	if m := mountOf(drv, tokenDir); volumes[m.Name].EmptyDir == nil || volumes[m.Name].EmptyDir.Medium != corev1.StorageMediumMemory {
		t.Errorf("%s: %s must be an emptyDir with medium Memory (tokens never reach a disk)", where, tokenDir)
	}
	if m := mountOf(drv, stateDir); hostPath(m.Name) != stateDir {
		t.Errorf("%s: %s is not hostPath %s", where, stateDir, stateDir)
	}
	for _, arg := range []string{
		"--endpoint=unix://" + socketDir + "/csi.sock",
		"--token-dir=" + tokenDir,
		"--state-dir=" + stateDir,
		"--kubelet-dir=" + kubeletDir,
	} {
		if !slices.Contains(drv.Args, arg) {
			t.Errorf("%s: container %s lacks argument %s", where, drv.Name, arg)
		}
	}

	reg := container(registrar)
	registration := "--kubelet-registration-path=" + socketHostDir + "csi.sock"
	for _, arg := range []string{"--csi-address=" + socketDir + "/csi.sock", registration} {
		if !slices.Contains(reg.Args, arg) {
			t.Errorf("%s: container %s lacks argument %s", where, reg.Name, arg)
		}
	}
	if p := reg.LivenessProbe; p == nil || p.Exec == nil ||
		!slices.Contains(p.Exec.Command, "--mode=kubelet-registration-probe") ||
		!slices.Contains(p.Exec.Command, registration) {
		t.Errorf("%s: container %s needs a liveness probe in kubelet-registration-probe mode with %s", where, reg.Name, registration)
	}
	if m := mountOf(reg, "/registration"); hostPath(m.Name) != kubeletDir+"/plugins_registry/" {
		t.Errorf("%s: /registration is not hostPath %s/plugins_registry/", where, kubeletDir)
	}
	// Both containers see the socket in the dir kubelet finds it in.
	for _, c := range []*corev1.Container{drv, reg} {
		if m := mountOf(c, socketDir); hostPath(m.Name) != socketHostDir {
			t.Errorf("%s: container %s: %s is not hostPath %s", where, c.Name, socketDir, socketHostDir)
		}
	}
}

func checkRBAC(t *testing.T, docs []doc) {
	grantsSecrets := func(where string, rules []rbacv1.PolicyRule) {
		for _, r := range rules {
			if slices.Contains(r.Resources, "secrets") || slices.Contains(r.Resources, "*") {
				t.Errorf("%s: grants access to Secrets; kubelet reads nodePublishSecretRef, the plugin needs none", where)
			}
		}
	}
	for _, r := range objects[rbacv1.Role](docs) {
		grantsSecrets(r.where, r.v.Rules)
	}
	for _, r := range objects[rbacv1.ClusterRole](docs) {
		grantsSecrets(r.where, r.v.Rules)
	}
}

// The spec's allowlists: volume attributes, and PV mountOptions (exact
// names, and names taking "=value").
var (
	allowedAttributes = []string{"apiURL", "workspace", "uid", "gid", "fileMode", "dirMode",
		"metadataTTL", "prefetchMemoryMiB", "cacheSizeMiB", "metricsAddr", "xattr"}
	allowedFlags   = []string{"ro", "xattr"}
	allowedOptions = []string{"uid", "gid", "file_mode", "dir_mode", "metadata_ttl",
		"prefetch_memory_mib", "cache_size_mib", "metrics_addr"}
)

// checkAttributes reports attributes outside the allowlist and values
// that cannot be right.
func checkAttributes(t *testing.T, where string, attrs map[string]string) {
	t.Helper()
	for k, v := range attrs {
		if !slices.Contains(allowedAttributes, k) {
			t.Errorf("%s: volume attribute %q is not one the driver accepts", where, k)
		}
		switch k {
		case "workspace":
			if _, _, err := creds.ParseSlug(v); err != nil {
				t.Errorf("%s: %v", where, err)
			}
		case "metadataTTL":
			if _, err := time.ParseDuration(v); err != nil {
				t.Errorf("%s: metadataTTL: %v", where, err)
			}
		case "apiURL":
			if !strings.HasPrefix(v, "https://") {
				t.Errorf("%s: apiURL %q is not https", where, v)
			}
		}
	}
}

// secretRef is a nodePublishSecretRef resolved to its namespace.
type secretRef struct{ where, namespace, name string }

func checkPersistentVolumes(t *testing.T, docs []doc) {
	pvs := map[string]item[corev1.PersistentVolume]{}
	var refs []secretRef
	for _, pv := range objects[corev1.PersistentVolume](docs) {
		pvs[pv.v.Name] = pv
		csi := pv.v.Spec.CSI
		if csi == nil {
			t.Errorf("%s: PersistentVolume %s is not a CSI volume", pv.where, pv.v.Name)
			continue
		}
		if csi.Driver != driverName {
			t.Errorf("%s: driver %q, want the CSIDriver's %q", pv.where, csi.Driver, driverName)
		}
		if _, ok := csi.VolumeAttributes["workspace"]; !ok {
			if _, _, err := creds.ParseSlug(csi.VolumeHandle); err != nil {
				t.Errorf("%s: volumeHandle: %v", pv.where, err)
			}
		}
		checkAttributes(t, pv.where, csi.VolumeAttributes)
		for _, o := range pv.v.Spec.MountOptions {
			name, value, hasValue := strings.Cut(o, "=")
			ok := !hasValue && slices.Contains(allowedFlags, name) || hasValue && slices.Contains(allowedOptions, name)
			if !ok {
				t.Errorf("%s: mountOption %q is not on the driver's allowlist", pv.where, o)
			}
			if name == "metadata_ttl" {
				if _, err := time.ParseDuration(value); err != nil {
					t.Errorf("%s: metadata_ttl: %v", pv.where, err)
				}
			}
		}
		if csi.NodePublishSecretRef == nil || csi.NodePublishSecretRef.Name == "" || csi.NodePublishSecretRef.Namespace == "" {
			t.Errorf("%s: PersistentVolume %s needs a nodePublishSecretRef with name and namespace", pv.where, pv.v.Name)
		} else {
			refs = append(refs, secretRef{pv.where, csi.NodePublishSecretRef.Namespace, csi.NodePublishSecretRef.Name})
		}
		if pv.v.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimRetain {
			t.Errorf("%s: reclaim policy %q, want Retain", pv.where, pv.v.Spec.PersistentVolumeReclaimPolicy)
		}
	}
	checkSecretRefs(t, docs, refs)

	bound := map[string]bool{}
	for _, pvc := range objects[corev1.PersistentVolumeClaim](docs) {
		pv, ok := pvs[pvc.v.Spec.VolumeName]
		if !ok {
			t.Errorf("%s: claim %s: volumeName %q names no PersistentVolume", pvc.where, pvc.v.Name, pvc.v.Spec.VolumeName)
			continue
		}
		bound[pv.v.Name] = true
		// A nil class would get the cluster's default one, and never bind.
		if pvc.v.Spec.StorageClassName == nil {
			t.Errorf("%s: claim %s must set storageClassName (to the PersistentVolume's)", pvc.where, pvc.v.Name)
		} else if *pvc.v.Spec.StorageClassName != pv.v.Spec.StorageClassName {
			t.Errorf("%s: claim %s: storageClassName %q, PersistentVolume %s has %q",
				pvc.where, pvc.v.Name, *pvc.v.Spec.StorageClassName, pv.v.Name, pv.v.Spec.StorageClassName)
		}
		for _, m := range pvc.v.Spec.AccessModes {
			if !slices.Contains(pv.v.Spec.AccessModes, m) {
				t.Errorf("%s: claim %s asks for %s, which PersistentVolume %s does not offer", pvc.where, pvc.v.Name, m, pv.v.Name)
			}
		}
		if r := pv.v.Spec.ClaimRef; r != nil && (r.Name != pvc.v.Name || r.Namespace != pvc.v.Namespace) {
			t.Errorf("%s: PersistentVolume %s is reserved for %s/%s", pv.where, pv.v.Name, r.Namespace, r.Name)
		}
	}
	for name, pv := range pvs {
		if !bound[name] {
			t.Errorf("%s: no claim names PersistentVolume %s", pv.where, name)
		}
	}
}

// checkSecretRefs reports references to Secrets that no manifest defines
// with a "token" key.
func checkSecretRefs(t *testing.T, docs []doc, refs []secretRef) {
	t.Helper()
	for _, r := range refs {
		found := false
		for _, s := range objects[corev1.Secret](docs) {
			if s.v.Namespace == r.namespace && s.v.Name == r.name {
				_, inData := s.v.Data["token"]
				_, inString := s.v.StringData["token"]
				if !inData && !inString {
					t.Errorf("%s: Secret %s/%s has no key \"token\"", s.where, r.namespace, r.name)
				}
				found = true
			}
		}
		if !found {
			t.Errorf("%s: nodePublishSecretRef %s/%s: no manifest defines that Secret", r.where, r.namespace, r.name)
		}
	}
}

func checkPods(t *testing.T, docs []doc) {
	var refs []secretRef
	for _, p := range objects[corev1.Pod](docs) {
		for _, v := range p.v.Spec.Volumes {
			if c := v.PersistentVolumeClaim; c != nil {
				if !slices.ContainsFunc(objects[corev1.PersistentVolumeClaim](docs), func(pvc item[corev1.PersistentVolumeClaim]) bool {
					return pvc.v.Name == c.ClaimName && pvc.v.Namespace == p.v.Namespace
				}) {
					t.Errorf("%s: pod %s: claim %q is not defined in namespace %q", p.where, p.v.Name, c.ClaimName, p.v.Namespace)
				}
			}
			csi := v.CSI
			if csi == nil {
				continue
			}
			if csi.Driver != driverName {
				t.Errorf("%s: inline volume %s: driver %q, want the CSIDriver's %q", p.where, v.Name, csi.Driver, driverName)
			}
			// Kubelet makes up the handle of an inline volume.
			if _, ok := csi.VolumeAttributes["workspace"]; !ok {
				t.Errorf("%s: inline volume %s needs the workspace attribute", p.where, v.Name)
			}
			checkAttributes(t, p.where, csi.VolumeAttributes)
			if csi.NodePublishSecretRef == nil || csi.NodePublishSecretRef.Name == "" {
				t.Errorf("%s: inline volume %s needs a nodePublishSecretRef", p.where, v.Name)
			} else {
				refs = append(refs, secretRef{p.where, p.v.Namespace, csi.NodePublishSecretRef.Name})
			}
		}
	}
	checkSecretRefs(t, docs, refs)
}

// podSpecs returns every pod template in the manifests.
func podSpecs(docs []doc) []item[corev1.PodSpec] {
	var out []item[corev1.PodSpec]
	for _, p := range objects[corev1.Pod](docs) {
		out = append(out, item[corev1.PodSpec]{p.where, &p.v.Spec})
	}
	for _, d := range objects[appsv1.DaemonSet](docs) {
		out = append(out, item[corev1.PodSpec]{d.where, &d.v.Spec.Template.Spec})
	}
	return out
}

// checkImages requires image names without a registry host: each operator
// points them at their own registry or mirror, and nodes never pull from
// the internet behind their back.
func checkImages(t *testing.T, docs []doc) {
	for _, p := range podSpecs(docs) {
		for _, c := range slices.Concat(p.v.InitContainers, p.v.Containers) {
			first, _, hasPath := strings.Cut(c.Image, "/")
			if hasPath && (strings.ContainsAny(first, ".:") || first == "localhost") {
				t.Errorf("%s: container %s: image %q names a registry host", p.where, c.Name, c.Image)
			}
			if !strings.Contains(c.Image, ":") {
				t.Errorf("%s: container %s: image %q has no tag", p.where, c.Name, c.Image)
			}
			if c.ImagePullPolicy == corev1.PullAlways {
				t.Errorf("%s: container %s: imagePullPolicy Always cannot use an image loaded onto the node", p.where, c.Name)
			}
		}
	}
}

var (
	// What a token or key looks like: ws-dev's and ws-bench's tokens, and
	// AWS access key ids, always; any long run of letters and digits when
	// it mixes both (so that long words and paths pass).
	tokenLike = []*regexp.Regexp{
		regexp.MustCompile(`ws(dev|bench)_[0-9a-f]{16,}`),
		regexp.MustCompile(`\b(AKIA|ASIA)[A-Z0-9]{12,}`),
	}
	longRun   = regexp.MustCompile(`[A-Za-z0-9_+=-]{32,}`)
	hasDigit  = regexp.MustCompile(`[0-9]`)
	hasLetter = regexp.MustCompile(`[A-Za-z]`)
)

// looksLikeToken reports whether s holds something that could be a real
// token.
func looksLikeToken(s string) bool {
	for _, re := range tokenLike {
		if re.MatchString(s) {
			return true
		}
	}
	for _, m := range longRun.FindAllString(s, -1) {
		if hasDigit.MatchString(m) && hasLetter.MatchString(m) {
			return true
		}
	}
	return false
}

func TestLooksLikeToken(t *testing.T) {
	for s, want := range map[string]bool{
		"REPLACE-ME-with-kubectl-create-secret":                      false,
		"/var/lib/kubelet/plugins/mount-ws.csi.workspace/csi.sock":   false,
		"--mode=kubelet-registration-probe":                          false,
		"wsdev_0123456789abcdef0123456789abcdef01234567":             true,
		"key: ASIAQWERTYUIOPASDFGH":                                  true,
		"token: eyJhbGciOiJIUzI1NiJ9Zm9vYmFyYmF6cXV4cXV1eHF1dXg":     true,
		"FwoGZXIvYXdzE0123456789abcdefghijABCDEFGHIJ0123456789abcdd": true,
	} {
		if got := looksLikeToken(s); got != want {
			t.Errorf("looksLikeToken(%q) = %v, want %v", s, got, want)
		}
	}
}

// checkNoRealTokens requires every Secret's values to be placeholders and
// no file under dir to hold anything token-like.
func checkNoRealTokens(t *testing.T, docs []doc, dir string) {
	for _, s := range objects[corev1.Secret](docs) {
		values := map[string]string{}
		for k, v := range s.v.StringData {
			values[k] = v
		}
		for k, v := range s.v.Data {
			values[k] = string(v) // already base64-decoded by the decoder
		}
		for k, v := range values {
			if !strings.Contains(v, "REPLACE") {
				t.Errorf("%s: Secret %s key %q holds a value; examples hold only a REPLACE-ME placeholder", s.where, s.v.Name, k)
			}
			if looksLikeToken(v) {
				t.Errorf("%s: Secret %s key %q looks like a real token", s.where, s.v.Name, k)
			}
		}
	}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".yaml") {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(data), "\n") {
			if looksLikeToken(line) {
				t.Errorf("%s:%d: looks like a real token", path, i+1)
			}
			// A base64 value may hide one.
			for _, f := range strings.Fields(line) {
				if b, err := base64.StdEncoding.DecodeString(f); err == nil && len(b) >= 16 && looksLikeToken(string(b)) {
					t.Errorf("%s:%d: base64 of something that looks like a real token", path, i+1)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkKustomization requires kustomization.yaml to list exactly the base
// manifests: every .yaml in this directory, none of the examples.
func checkKustomization(t *testing.T, docs []doc) {
	ks := objects[kustomization](docs)
	if len(ks) != 1 {
		t.Fatalf("want one kustomization.yaml, have %d", len(ks))
	}
	k := ks[0]
	base, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	base = slices.DeleteFunc(base, func(f string) bool { return f == "kustomization.yaml" })
	listed := slices.Sorted(slices.Values(k.v.Resources))
	if !slices.Equal(listed, base) {
		t.Errorf("%s: resources %v, want the base manifests %v", k.where, listed, base)
	}
}
