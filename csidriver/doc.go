// Package csidriver is mount-ws's CSI node plugin (driver
// mount-ws.csi.workspace): the Identity and Node services, the policy
// that turns a volume's attributes and mount options into a mount-ws
// command line, and the supervision of the mount-ws processes it starts.
// The interface (names, flags, attributes) is fixed in csi-spec.md.
//
// # Process model
//
// NodePublishVolume runs the mount-ws binary in its default background
// mode: mount-ws re-executes itself in a new session (setsid) and the
// first process returns only once the mount answers, or fails with its
// own one-line message and exit code (2 usage, 3 credentials, 4 mount),
// which become a gRPC status with that message. The driver does not keep
// the mount-ws processes as children it waits for; it finds one by its
// arguments in /proc when it must wait for it (NodeUnpublishVolume) and
// reaps it if it became the driver's child (the driver as PID 1).
//
// Each target has its own files, named after the volume id and a hash of
// the target path: a 0600 token file under --token-dir, and under
// --state-dir a cache directory, mount-ws's log and state.json (how the
// target was published; no secret).
//
// # Idempotency
//
// Calls for one target path are serialized; a call that finds another in
// progress gets Aborted and kubelet retries it. NodePublishVolume reads
// /proc/self/mountinfo: the same workspace answering at the target with
// the same options is a republish (requiresRepublish: kubelet calls
// periodically): the token file is rewritten, which mount-ws re-reads at
// every credentials fetch, and nothing is mounted. A dead mount of it
// (ENOTCONN when listing the target) is detached and mounted again. Any
// other mount there, or the same volume with other options, is
// AlreadyExists. NodeUnpublishVolume of a missing or unmounted target
// succeeds.
//
// # Open files when the driver is restarted or upgraded
//
// mount-ws runs inside the driver's container. setsid detaches it from
// the driver's session, but not from the container: when the driver's
// container stops (a DaemonSet rollout, a crash, an OOM kill), the
// runtime kills every process of its PID namespace, so every mount-ws on
// the node dies with it. Data written and closed (close(2) returned) is
// in the bucket; data in files still open for writing is not (its staged
// copy may remain in the volume's cache dir under --state-dir). The
// mounts stay in the kernel's mount table, dead: every access in the
// workload's pod fails with ENOTCONN ("Transport endpoint is not
// connected") or EIO, and open file descriptors never recover.
//
// The new driver logs each dead mount it finds under --kubelet-dir at
// start ("mount-ws for VOLUME at TARGET died with the previous driver;
// the pod must be restarted, or kubelet's republish will remount it").
// With requiresRepublish: true, kubelet's next periodic NodePublishVolume
// finds the dead mount, detaches it and mounts the workspace again, so
// paths work again within a minute or two; but the kernel cannot attach
// a new server to an old mount, so files the workload held open keep
// failing and must be reopened (or the pod restarted). Until mount-ws
// runs outside the driver's container (mountpoint-s3's CSI driver moved
// its mounts out of its plugin container for this reason; a holder
// DaemonSet that receives the /dev/fuse fd would do it here), roll
// the driver only on drained nodes, or accept that pods using mount-ws
// volumes see errors and restart.
//
// # Secrets
//
// The token comes only from the request's secrets ("token", from
// nodePublishSecretRef). It is written to its token file and nowhere
// else: not in mount-ws's arguments or environment (mount-ws gets PATH
// only), and every request is logged through protosanitizer, which
// replaces secret fields.
package csidriver
