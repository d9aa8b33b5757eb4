#!/usr/bin/env bash
# run-e2e.sh: bring up a fleet, run the e2e tests against it, always tear it down.
# `make e2e` calls this. Where the e2e part cannot run (not root, not Linux) it says so loudly and
# fails, unless E2E=skip is given.
set -uo pipefail
cd "$(dirname "$0")/.."
N=${N:-6}
export FLEET_ID=${FLEET_ID:-1}
if [ "$(uname -s)" != Linux ] || [ "$(id -u)" != 0 ]; then
  msg="e2e tests NOT RUN: they need root on Linux (network namespaces, mounts, systemd-nspawn)"
  if [ "${E2E:-}" = skip ]; then printf '\n*** %s (E2E=skip given) ***\n\n' "$msg" >&2; exit 0; fi
  printf '\n*** %s; run as root, or pass E2E=skip to skip them explicitly ***\n\n' "$msg" >&2; exit 1
fi
fleet=test/fleet/fleet.sh
$fleet down >/dev/null 2>&1 || true          # a fleet left over by an interrupted run
trap '$fleet down || echo "*** fleet down failed: inspect with test/fleet/fleet.sh status ***" >&2' EXIT
start=$(date +%s.%N)
$fleet up "$N" >/dev/null || exit 1
echo "fleet up $N: $(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')s"
eval "$($fleet env)"
export DROVER_FLEET_SSH_CONFIG=$FLEET_SSH_CONFIG DROVER_FLEET_NODES=$FLEET_NODES DROVER_BIN=$PWD/bin
go test -tags e2e -count=1 -timeout 25m ${E2E_RUN:+-run "$E2E_RUN"} -v ./test/e2e/...

