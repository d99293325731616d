#!/usr/bin/env bash
# Conformance harness, run by hand: pjdfstest groups and s3fs-fuse's own
# integration tests against mount-ws and against s3fs, both mounted on the
# same local workspace (ws-dev), with per-group counts side by side.
#
# Needs root, /dev/fuse and, on Debian:
#   apt-get install fuse3 s3fs jq curl perl autoconf automake libtool build-essential attr
# Optional: the aws CLI (tests that check objects behind the mount's back),
# python2 (two tests' helper scripts). Tests lacking them fail; the table says
# which ("needs aws", "needs python2", "needs xattr").
#
# The two suites are not part of this repo; build them by hand:
#   PJDFSTEST_DIR (default /work/conftools/pjdfstest): a checkout of
#     github.com/pjd/pjdfstest, built with
#     autoreconf -ifs && ./configure && make pjdfstest
#   S3FS_TEST_DIR (default /work/conftools/s3fs-fuse-1.90): the s3fs-fuse
#     source at the tag matching the installed s3fs (Debian 12: v1.90);
#     only its test/ directory is used, nothing is built.
#
# Other settings:
#   CONFORMANCE_RESULTS  results dir (default /tmp/conformance-results): raw
#                        logs per tool and group, summary.txt
#   TOOLS                "mount-ws s3fs" (either or both)
#   FSSTRESS             path of xfstests' fsstress, built by hand (none: not run)
#   FSSTRESS_ARGS        its arguments ("-n 400 -p 2 -s 1"); FSSTRESS_TIMEOUT (900 s)
#   PJD_GROUPS           pjdfstest groups (default below; "" skips pjdfstest)
#   S3FS_IT_TESTS        s3fs test functions (default: all the suite adds;
#                        "none" skips the suite)
#   PJD_TIMEOUT          seconds per pjdfstest group (900)
#   IT_TIMEOUT           seconds per s3fs test function (120)
#   S3FS_DBGLEVEL        s3fs log level (warn)
#   KEEP_WORK=1          keep the temp dir (ws-dev data, caches) afterwards
#
# ws-dev serves two fixed workspaces and only demo/scratch is empty, so both
# tools mount demo/scratch and each works only under its own top directory
# (mount-ws/ or s3fs/). s3fs 1.90 checks the bucket at mount time by listing
# the bucket root, which prefix-scoped credentials may not do, so s3fs talks
# to a tiny local proxy that answers that one request with an empty listing
# and passes every other request through unchanged (as cmd/ws-bench does).
set -euo pipefail
umask 022
repo=$(cd "$(dirname "$0")/.." && pwd)

PJDFSTEST_DIR=${PJDFSTEST_DIR:-/work/conftools/pjdfstest}
S3FS_TEST_DIR=${S3FS_TEST_DIR:-/work/conftools/s3fs-fuse-1.90}
RES=${CONFORMANCE_RESULTS:-/tmp/conformance-results}
TOOLS=${TOOLS:-mount-ws s3fs}
PJD_GROUPS=${PJD_GROUPS-open unlink mkdir rmdir rename truncate ftruncate chmod chown utimensat symlink}
S3FS_IT_TESTS=${S3FS_IT_TESTS:-}
PJD_TIMEOUT=${PJD_TIMEOUT:-900}
IT_TIMEOUT=${IT_TIMEOUT:-120}
S3FS_DBGLEVEL=${S3FS_DBGLEVEL:-warn}
FSSTRESS=${FSSTRESS:-}
FSSTRESS_ARGS=${FSSTRESS_ARGS:--n 400 -p 2 -s 1}
FSSTRESS_TIMEOUT=${FSSTRESS_TIMEOUT:-900}

die() { echo "conformance: $*" >&2; exit 1; }
log() { echo "== $(date +%T) $*"; }

# ---- preconditions ---------------------------------------------------------
[ "$(id -u)" = 0 ] || die "run as root (FUSE mounts, pjdfstest's chown/other-user tests)"
[ -e /dev/fuse ] || die "/dev/fuse missing"
for c in go curl jq perl prove timeout umount; do
  command -v "$c" >/dev/null || die "$c not found"
done
case " $TOOLS " in *" s3fs "*) command -v s3fs >/dev/null || die "s3fs not found (apt-get install s3fs)" ;; esac
if [ -n "$PJD_GROUPS" ]; then
  [ -x "$PJDFSTEST_DIR/pjdfstest" ] || die "no $PJDFSTEST_DIR/pjdfstest; build it by hand (see the header)"
fi
it_main=$S3FS_TEST_DIR/test/integration-test-main.sh
if [ "$S3FS_IT_TESTS" != none ]; then
  [ -f "$it_main" ] || die "no $it_main; unpack s3fs-fuse's source there (see the header)"
fi

rm -rf "$RES"
mkdir -p "$RES/logs" "$RES/pjdfstest" "$RES/s3fs-it"
work=$(mktemp -d /tmp/conformance.XXXXXX)

# ---- cleanup: unmount what we mounted, stop what we started ----------------
mounts=()   # mountpoints we mounted
pids=()     # processes we started (mount daemons in -f mode, shim, ws-dev last)
secrets=()  # strings never to leave in the results
cleanup() {
  local rc=$? m p i
  trap - EXIT INT TERM
  set +e
  cd /
  for m in "${mounts[@]}"; do
    for i in 1 2 3 4 5; do
      grep -q " $m fuse" /proc/mounts || break
      timeout 30 umount "$m" 2>/dev/null || sleep 2
    done
    if grep -q " $m fuse" /proc/mounts; then
      echo "conformance: $m busy, lazy unmount" >&2
      umount -l "$m" || true
    fi
  done
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do # reverse order: ws-dev last
    p=${pids[i]}
    kill "$p" 2>/dev/null || continue
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  [ -f "$work/ws-dev.log" ] && grep -v 'Token:' "$work/ws-dev.log" >"$RES/logs/ws-dev.log"
  # Belt and braces: no token or key in the results, whatever a tool logged.
  for s in "${secrets[@]}"; do
    [ -n "$s" ] || continue
    grep -rlF -- "$s" "$RES" 2>/dev/null | while read -r f; do
      S=$s perl -pi -e 's/\Q$ENV{S}\E/<redacted>/g' "$f"
    done || true
  done
  if [ "${KEEP_WORK:-}" = 1 ]; then echo "work dir kept: $work"; else rm -rf "$work"; fi
  exit "$rc"
}
trap cleanup EXIT INT TERM

# wait_mount MNT PID: until MNT is a FUSE mount, or fail if PID exits (30 s).
wait_mount() {
  for _ in $(seq 150); do
    grep -q " $1 fuse" /proc/mounts && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.2
  done
  return 1
}

# ---- build, local workspace ------------------------------------------------
log "building mount-ws and ws-dev"
(cd "$repo" && go build -o "$work/bin/" ./cmd/mount-ws ./cmd/ws-dev)
git -C "$repo" log -1 --format='mount-ws commit %h %s' >"$RES/versions.txt" 2>/dev/null ||
  # An export (git archive) has no history, but its .commit names it.
  sed -n 's/^\([0-9a-f]\{7,\}\)$/mount-ws commit \1 (export)/p' "$repo/.commit" >"$RES/versions.txt" 2>/dev/null || true

log "starting ws-dev"
"$work/bin/ws-dev" -data "$work/wsdev" -ttl 12h -seed=false >"$work/ws-dev.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do
  [ -f "$work/wsdev/env" ] && break
  kill -0 "${pids[0]}" 2>/dev/null || die "ws-dev exited: $(tail -3 "$work/ws-dev.log")"
  sleep 0.2
done
[ -f "$work/wsdev/env" ] || die "ws-dev did not come up in 60 s"
. "$work/wsdev/env" # WS_API_URL, WS_S3_URL, WS_TOKEN_FILE
secrets+=("$(cat "$WS_TOKEN_FILE")")
ws=demo/scratch

# Temporary S3 credentials of the workspace, for s3fs and the aws CLI.
creds=$(curl -fsS -H "Authorization: Bearer $(cat "$WS_TOKEN_FILE")" \
  "$WS_API_URL/api/v1/org/${ws%/*}/ws/${ws#*/}/storage/credentials") || die "credentials request failed"
cr() { jq -r ".$1" <<<"$creds"; }
AKID=$(cr access_key_id) SECRET=$(cr secret_access_key) STOKEN=$(cr session_token)
BUCKET=$(cr bucket) PREFIX=$(cr prefix) REGION=$(cr region) ENDPOINT=$(cr endpoint)
secrets+=("$AKID" "$SECRET" "$STOKEN")
unset creds

# ---- mounts -----------------------------------------------------------------
declare -A mnt mpid
mkdir -p "$work/mnt"
for tool in $TOOLS; do
  mnt[$tool]=$work/mnt/$tool
  mkdir -p "${mnt[$tool]}"
  case $tool in
  mount-ws)
    # --metadata-ttl 1s and --xattr match the stat_cache_expire=1 and
    # use_xattr=1 that s3fs gets below (from s3fs's own test harness): the
    # suite writes objects behind the mount and reads them through it a
    # second later, and sets extended attributes.
    "$work/bin/mount-ws" -f --api-url "$WS_API_URL" --token-file "$WS_TOKEN_FILE" --allow-other --metadata-ttl 1s --xattr \
      --cache-dir "$work/mount-ws-cache" --log-file "$RES/logs/mount-ws.log" \
      "$ws" "${mnt[$tool]}" 2>>"$RES/logs/mount-ws.log" &
    ;;
  s3fs)
    # The bucket-check proxy (see the header), built from the few lines below.
    mkdir -p "$work/shim"
    cat >"$work/shim/main.go" <<'EOF'
package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
)

// Usage: shim UPSTREAM BUCKET. Prints its URL, then serves until killed.
func main() {
	up, err := url.Parse(os.Args[1])
	if err != nil {
		panic(err)
	}
	bucket := os.Args[2]
	rp := httputil.NewSingleHostReverseProxy(up) // keeps the Host header, so SigV4 verifies
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	fmt.Println("http://" + ln.Addr().String())
	panic(http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "GET" && r.URL.RawQuery == "" && (r.URL.Path == "/"+bucket || r.URL.Path == "/"+bucket+"/") {
			w.Header().Set("Content-Type", "application/xml")
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">`+
				`<Name>%s</Name><Prefix></Prefix><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated></ListBucketResult>`, bucket)
			return
		}
		rp.ServeHTTP(w, r)
	})))
}
EOF
    (cd "$work/shim" && GOFLAGS= go build -o shim main.go)
    "$work/shim/shim" "$ENDPOINT" "$BUCKET" >"$work/shim/url" 2>"$RES/logs/shim.log" &
    pids+=($!)
    for _ in $(seq 50); do [ -s "$work/shim/url" ] && break; sleep 0.2; done
    shim_url=$(cat "$work/shim/url")
    [ -n "$shim_url" ] || die "s3fs shim did not start"
    # Options as in s3fs's own test harness (small-integration-test.sh),
    # plus the workspace's session credentials and allow_other.
    AWSACCESSKEYID=$AKID AWSSECRETACCESSKEY=$SECRET AWSSESSIONTOKEN=$STOKEN \
      s3fs "$BUCKET:/${PREFIX%/}" "${mnt[$tool]}" -f \
      -o "url=$shim_url,endpoint=$REGION,use_path_request_style,use_session_token,sigv4" \
      -o allow_other,use_xattr=1,stat_cache_expire=1,stat_cache_interval_expire=1,retries=3 \
      -o "dbglevel=$S3FS_DBGLEVEL" >"$RES/logs/s3fs.log" 2>&1 &
    ;;
  *) die "unknown tool $tool" ;;
  esac
  mpid[$tool]=$!
  pids+=($!)
  wait_mount "${mnt[$tool]}" "${mpid[$tool]}" || die "$tool did not mount; see $RES/logs/$tool.log"
  mounts+=("${mnt[$tool]}")
  mkdir -p "${mnt[$tool]}/$tool"
  log "$tool mounted at ${mnt[$tool]} (working in $tool/)"
done
{
  # Only when s3fs runs: without it, the pipe fails under pipefail.
  case " $TOOLS " in *" s3fs "*) s3fs --version 2>/dev/null | head -1 ;; esac
  echo "pjdfstest: $PJDFSTEST_DIR $(cat "$PJDFSTEST_DIR/.commit" 2>/dev/null)"
  echo "s3fs tests: $S3FS_TEST_DIR"
} >>"$RES/versions.txt"

# ---- pjdfstest ---------------------------------------------------------------
# Each group runs in a fresh directory on the mount (pjdfstest works in CWD).
for tool in $TOOLS; do
  mkdir -p "$RES/pjdfstest/$tool"
  for g in $PJD_GROUPS; do
    d=${mnt[$tool]}/$tool/pjd-$g
    mkdir -p "$d"
    log "pjdfstest $g on $tool"
    (cd "$d" && timeout -k 30 "$PJD_TIMEOUT" prove -rv "$PJDFSTEST_DIR/tests/$g") \
      >"$RES/pjdfstest/$tool/$g.log" 2>&1 || true
  done
done

# pjd_counts LOG: "failed total files_failed files" from prove -v output.
# A subtest fails when "not ok" without TODO, or when planned but never run
# (a crash or the timeout).
pjd_counts() {
  awk '
    /^1\.\.[0-9]+/ { plan += substr($1, 4); files++ }
    /^ok [0-9]/ { ran++ }
    /^not ok [0-9]/ { ran++; if ($0 !~ /# TODO/) bad++ }
    /\(Wstat: / { fbad++ }
    END { missing = plan - ran; if (missing < 0) missing = 0
          printf "%d %d %d %d\n", bad + missing, (plan > ran ? plan : ran), fbad, files }' "$1"
}

# ---- s3fs-fuse integration tests ------------------------------------------
# The suite's main script defines the test functions and then runs them all;
# we source only the definitions (a derived copy in the temp dir) and run each
# function in its own shell, under a timeout, in a fresh run directory, as
# run_suite would. Its helper scripts are reached as ../../x.py from the run
# directory, so symlinks to them sit two levels up, as in s3fs's tree.
if [ "$S3FS_IT_TESTS" != none ]; then
  defs=$work/it-defs.sh
  sed '/^init_suite$/,$d' "$it_main" >"$defs"
  mkdir -p "$work/it-bin" "$work/it-tmp" "$work/it-cache"
  # The suite checks objects with "aws ... --bucket B --key K" and s3://B/K,
  # keys relative to the bucket root; this wrapper moves them under the
  # directory the tests run in.
  if real_aws=$(command -v aws); then
    cat >"$work/it-bin/aws" <<'EOF'
#!/usr/bin/env bash
a=()
while [ $# -gt 0 ]; do
  case $1 in
  --key) a+=("$1" "$KEYPFX$2"); shift 2 ;;
  "s3://$TEST_BUCKET_1/"*) a+=("s3://$TEST_BUCKET_1/$KEYPFX${1#"s3://$TEST_BUCKET_1/"}"); shift ;;
  *) a+=("$1"); shift ;;
  esac
done
exec "$REAL_AWS" "${a[@]}"
EOF
    chmod +x "$work/it-bin/aws"
  fi
  # Two helper scripts are python2; Debian 12 has none, pyenv may.
  if ! python2 -c '' 2>/dev/null; then
    for p in "$(pyenv root 2>/dev/null)"/versions/2.7*/bin/python2; do
      if [ -x "$p" ]; then ln -sf "$p" "$work/it-bin/python2"; break; fi
    done
  fi
  for tool in $TOOLS; do
    base=${mnt[$tool]}/$tool/it
    mkdir -p "$base/mnt" "$RES/s3fs-it/$tool"
    for py in write_multiple_offsets.py ut_test.py; do
      ln -sfn "$S3FS_TEST_DIR/test/$py" "$base/$py" 2>/dev/null || true
    done
    itenv=(
      TEST_BUCKET_1="$BUCKET" S3_URL="$ENDPOINT" S3_ENDPOINT="$REGION"
      TEST_BUCKET_MOUNT_POINT_1="$base/mnt" TEST_SCRIPT_DIR="$S3FS_TEST_DIR/test"
      KEYPFX="$PREFIX$tool/it/mnt/" REAL_AWS="${real_aws:-}" S3FS_PID="${mpid[$tool]}"
      CACHE_DIR="$work/it-cache" ENSURE_DISKFREE_SIZE=10 TMPDIR="$work/it-tmp"
      AWS_ACCESS_KEY_ID="$AKID" AWS_SECRET_ACCESS_KEY="$SECRET" AWS_SESSION_TOKEN="$STOKEN"
      AWS_DEFAULT_REGION="$REGION" PATH="$work/it-bin:$PATH"
    )
    tests=$S3FS_IT_TESTS
    if [ -z "$tests" ]; then # what the suite's add_all_tests would add for this mount
      tests=$(cd "$S3FS_TEST_DIR/test" && env "${itenv[@]}" timeout 60 bash -c \
        'source test-utils.sh; source "$1"; init_suite; add_all_tests; echo "${TEST_LIST[@]}"' _ "$defs" 2>/dev/null)
    fi
    : >"$RES/s3fs-it/$tool.tsv"
    for t in $tests; do
      log "s3fs test $t on $tool"
      start=$SECONDS rc=0
      (cd "$S3FS_TEST_DIR/test" && env "${itenv[@]}" timeout -k 10 "$IT_TIMEOUT" bash -c \
        'set -o errexit -o pipefail; source test-utils.sh; source "$1"; cd_run_dir "testrun-$2"; "$2" "testrun-$2"' \
        _ "$defs" "$t") >"$RES/s3fs-it/$tool/$t.log" 2>&1 || rc=$?
      sed -i '/warning: setlocale/d' "$RES/s3fs-it/$tool/$t.log" # test-utils.sh sets LC_ALL=en_US.UTF-8
      case $rc in 0) r=PASS ;; 124 | 137) r=TIMEOUT ;; *) r=FAIL ;; esac
      # A hint for failures caused by what the test needs rather than the fs.
      note=
      if [ $r != PASS ]; then
        f=$RES/s3fs-it/$tool/$t.log
        if grep -q 'aws: command not found' "$f"; then note="needs aws"
        elif grep -qE 'python2.*(No such file|not found)' "$f"; then note="needs python2"
        elif grep -qE '(setfattr|getfattr).*(not supported|No such attribute)' "$f"; then note="needs xattr"
        fi
      fi
      printf '%s\t%s\t%s\t%s\n' "$t" "$r" "$((SECONDS - start))" "$note" >>"$RES/s3fs-it/$tool.tsv"
      timeout 120 rm -rf "$base/mnt/testrun-$t" 2>/dev/null || true
    done
  done
fi

# ---- xfstests' fsstress --------------------------------------------------------
# Random operations by several processes (growing files sparsely to 1-2 GiB,
# writing in their middle, truncating, fsync), then rm -rf of the tree.
if [ -n "$FSSTRESS" ]; then
  : >"$RES/fsstress.tsv"
  for tool in $TOOLS; do
    d=${mnt[$tool]}/$tool/fsstress
    mkdir -p "$d"
    log "fsstress $FSSTRESS_ARGS on $tool"
    start=$SECONDS rc=0
    # shellcheck disable=SC2086 # the arguments are words
    timeout -k 30 "$FSSTRESS_TIMEOUT" "$FSSTRESS" -d "$d" $FSSTRESS_ARGS >"$RES/logs/fsstress-$tool.log" 2>&1 || rc=$?
    secs=$((SECONDS - start))
    start=$SECONDS rmrc=0
    timeout 600 rm -rf "$d" 2>>"$RES/logs/fsstress-$tool.log" || rmrc=$?
    printf '%s\t%s\t%s\t%s\t%s\n' "$tool" "$rc" "$secs" "$rmrc" "$((SECONDS - start))" >>"$RES/fsstress.tsv"
  done
fi

# ---- summary -----------------------------------------------------------------
{
  echo "Conformance of mount-ws and s3fs on one local workspace ($(date -u +%FT%TZ))"
  sed 's/^/  /' "$RES/versions.txt"
  if [ -n "$PJD_GROUPS" ]; then
    echo
    echo "pjdfstest: failed/total subtests (failed/total test files); planned but not run counts as failed"
    printf '%-12s' group; for tool in $TOOLS; do printf '  %-22s' "$tool"; done; echo
    declare -A sum
    for tool in $TOOLS; do sum[$tool]="0 0"; done
    for g in $PJD_GROUPS; do
      printf '%-12s' "$g"
      for tool in $TOOLS; do
        read -r fb tot ffb fl < <(pjd_counts "$RES/pjdfstest/$tool/$g.log")
        printf '  %-22s' "$fb/$tot ($ffb/$fl)"
        sum[$tool]="$((${sum[$tool]% *} + fb)) $((${sum[$tool]#* } + tot))"
      done
      echo
    done
    printf '%-12s' total; for tool in $TOOLS; do printf '  %-22s' "${sum[$tool]/ //}"; done; echo
  fi
  if [ "$S3FS_IT_TESTS" != none ]; then
    echo
    echo "s3fs-fuse integration tests (one function each, ${IT_TIMEOUT}s bound)"
    printf '%-42s' test; for tool in $TOOLS; do printf '  %-22s' "$tool"; done; echo
    first=${TOOLS%% *}
    cut -f1 "$RES/s3fs-it/$first.tsv" | while read -r t; do
      printf '%-42s' "$t"
      for tool in $TOOLS; do
        printf '  %-22s' "$(awk -F'\t' -v t="$t" '$1 == t { print $2 ($4 != "" ? " (" $4 ")" : "") }' "$RES/s3fs-it/$tool.tsv")"
      done
      echo
    done
    printf '%-42s' "passed"
    for tool in $TOOLS; do
      printf '  %-22s' "$(awk -F'\t' '$2 == "PASS" { p++ } END { printf "%d/%d", p, NR }' "$RES/s3fs-it/$tool.tsv")"
    done
    echo
  fi
  if [ -n "$FSSTRESS" ]; then
    echo
    echo "fsstress $FSSTRESS_ARGS (${FSSTRESS_TIMEOUT}s bound), then rm -rf of its tree"
    awk -F'\t' '{ printf "  %-10s exit %s in %s s; rm -rf exit %s in %s s\n", $1, $2, $3, $4, $5 }' "$RES/fsstress.tsv"
  fi
  echo
  echo "Raw logs: $RES"
} | tee "$RES/summary.txt"
