#!/usr/bin/env bash
# Fails when a package imports against the intended direction
# (cmd -> fs -> vfs -> bucket -> creds; cmd -> metrics, which reads the others'
# snapshots; cmd/mount-ws-csi -> csidriver -> creds; mounttab, the mount
# table, spans and datacache, leaves any of them may use; internal/ only from tests and dev
# commands),
# or when the mount-ws binary would link the S3 server.
set -euo pipefail
cd "$(dirname "$0")/.."
mod=$(go list -m)
fail=0

# forbidden[pkg]="patterns it must not import" (non-test imports only)
declare -A forbidden=(
  [creds]="$mod/bucket $mod/fs $mod/metrics $mod/cmd $mod/internal"
  [bucket]="$mod/fs $mod/metrics $mod/cmd $mod/internal"
  [fs]="$mod/cmd $mod/creds $mod/metrics $mod/internal"
  # The filesystem's core knows nothing of FUSE: fs adapts it to go-fuse.
  [vfs]="$mod/fs $mod/cmd $mod/creds $mod/metrics $mod/internal github.com/hanwen/go-fuse"
  [metrics]="$mod/cmd $mod/internal"
  # The CSI plugin runs mount-ws as a program; of our packages it uses
  # only creds, to validate workspace names, and mounttab.
  [csidriver]="$mod/fs $mod/bucket $mod/metrics $mod/cmd $mod/internal"
  # The mount table is shared by the commands and the CSI plugin: it
  # imports nothing of the module, so it can never close a cycle.
  [mounttab]="$mod"
  # Byte-range sets, for the file system's staging copies: a leaf too.
  [spans]="$mod"
  # The data cache's blocks on disk, for the file system: a leaf too.
  [datacache]="$mod"
)
for pkg in "${!forbidden[@]}"; do
  [ -d "$pkg" ] || continue
  # Test-support packages (name ending in "test", like bucket/buckettest)
  # are test code and may use internal/ helpers.
  imports=$(go list -f '{{$n := .ImportPath}}{{range .Imports}}{{$n}} {{.}}{{"\n"}}{{end}}' "./$pkg/..." 2>/dev/null \
    | grep -vE '^[^ ]*test ' | cut -d' ' -f2 || true)
  for bad in ${forbidden[$pkg]}; do
    if grep -qE "^$bad(/|$)" <<<"$imports"; then
      echo "check-deps: $pkg imports $bad"; fail=1
    fi
  done
done

if [ -d cmd/mount-ws ]; then
  if go list -deps ./cmd/mount-ws | grep -qE 'versitygw|/internal/wsstack'; then
    echo "check-deps: cmd/mount-ws links the S3 server (versitygw or internal/wsstack)"; fail=1
  fi
fi
exit $fail
