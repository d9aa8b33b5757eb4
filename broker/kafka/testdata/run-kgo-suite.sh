#!/usr/bin/env bash
# Runs franz-go's own kgo integration suite against a freshly built
# drover-broker on a random loopback port with a temporary log dir.
#
#   broker/kafka/testdata/run-kgo-suite.sh [extra go test args...]
#
# Env: FRANZ_VERSION (default v1.22.2), KGO_TEST_RECORDS (default 20000),
#      KEEP=1 keeps the temp dir (broker log in $TMP/broker.log).
set -euo pipefail
cd "$(dirname "$0")/../../.."
FRANZ_VERSION=${FRANZ_VERSION:-v1.22.2}
TMP=$(mktemp -d /tmp/drover-kgo.XXXXXX)
BIN=$TMP/drover-broker
go build -o "$BIN" ./broker/cmd/drover-broker
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$TMP/server.properties" <<PROPS
broker.id=1
listeners=PLAINTEXT://127.0.0.1:$PORT
log.dirs=$TMP/logs
num.partitions=1
group.initial.rebalance.delay.ms=0
admin.listener=127.0.0.1:0
PROPS
"$BIN" --config "$TMP/server.properties" >"$TMP/broker.log" 2>&1 &
PID=$!
cleanup() {
	kill -TERM "$PID" 2>/dev/null || true
	wait "$PID" 2>/dev/null || true
	if [[ "${KEEP:-}" == 1 ]]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
for _ in $(seq 100); do
	if (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null; then break; fi
	sleep 0.1
done
DIR=$(go mod download -json "github.com/twmb/franz-go@$FRANZ_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
echo "kgo suite: franz-go $FRANZ_VERSION against drover-broker on 127.0.0.1:$PORT" >&2
start=$(date +%s)
set +e
(cd "$DIR/pkg/kgo" && KGO_SEEDS=127.0.0.1:$PORT KGO_TEST_RF=1 KGO_TEST_RECORDS=${KGO_TEST_RECORDS:-20000} \
	GOFLAGS=-mod=mod go test -count=1 -skip TestTxnEtl "$@" .)
rc=$?
set -e
echo "kgo suite: exit $rc after $(( $(date +%s) - start ))s" >&2
if [[ $rc != 0 ]]; then tail -50 "$TMP/broker.log" >&2; fi
exit $rc
