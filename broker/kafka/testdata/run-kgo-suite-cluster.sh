#!/usr/bin/env bash
# Runs franz-go's kgo integration suite against a 3-coordinator + 3-broker
# drover cluster (built binaries, subprocesses, random loopback ports,
# temporary dirs) with KGO_TEST_RF=3.
#
#   broker/kafka/testdata/run-kgo-suite-cluster.sh [extra go test args...]
#
# Env: FRANZ_VERSION (default v1.22.2), KGO_TEST_RECORDS (default 20000),
#      KEEP=1 keeps the temp dir (logs in $TMP/*.log),
#      HOLD=1 starts the cluster, prints its seeds and waits (no suite;
#      e.g. for `go run ./bench/broker -cluster SEEDS`); Ctrl-C stops it.
#      RUN="cmd" runs cmd with $SEEDS (and $ADMINS, the brokers' admin
#      listeners: /metrics, /debug/pprof/) set instead of the suite.
set -euo pipefail
cd "$(dirname "$0")/../../.."
FRANZ_VERSION=${FRANZ_VERSION:-v1.22.2}
TMP=$(mktemp -d /tmp/drover-kgo-cluster.XXXXXX)
go build -o "$TMP/drover-broker" ./broker/cmd/drover-broker
go build -o "$TMP/drover-coordinator" ./broker/cmd/drover-coordinator
ports() { python3 -c 'import socket
ss=[socket.socket() for _ in range('"$1"')]
[s.bind(("127.0.0.1",0)) for s in ss]
print(" ".join(str(s.getsockname()[1]) for s in ss))'; }
read -r -a P <<<"$(ports 12)"
# coordinators: client P0..2, peer P3..5; brokers: kafka P6..8, admin P9..11
ZPIDS=()
BPIDS=()
cleanup() {
	# Brokers first (their graceful stop talks to the coordinators).
	for pid in "${BPIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${BPIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
	for pid in "${ZPIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${ZPIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
	if [[ "${KEEP:-}" == 1 ]]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
SERVERS=""
for i in 1 2 3; do
	SERVERS+="server.$i=127.0.0.1:${P[$((i + 2))]}:${P[$((i + 2))]};${P[$((i - 1))]}"$'\n'
done
CONNECT=""
for i in 1 2 3; do
	d=$TMP/zk$i
	mkdir -p "$d"
	echo "$i" >"$d/myid"
	cat >"$TMP/zoo$i.cfg" <<CFG
tickTime=2000
initLimit=10
syncLimit=5
dataDir=$d
clientPortAddress=127.0.0.1
clientPort=${P[$((i - 1))]}
admin.serverPort=0
$SERVERS
CFG
	"$TMP/drover-coordinator" --config "$TMP/zoo$i.cfg" >"$TMP/zk$i.log" 2>&1 &
	ZPIDS+=($!)
	CONNECT+="${CONNECT:+,}127.0.0.1:${P[$((i - 1))]}"
done
SEEDS=""
for i in 1 2 3; do
	port=${P[$((i + 5))]}
	cat >"$TMP/server$i.properties" <<PROPS
broker.id=$i
listeners=PLAINTEXT://127.0.0.1:$port
log.dirs=$TMP/logs$i
coordinator.connect=$CONNECT
num.partitions=1
default.replication.factor=3
min.insync.replicas=2
group.initial.rebalance.delay.ms=0
admin.listener=127.0.0.1:${P[$((i + 8))]}
PROPS
	"$TMP/drover-broker" --config "$TMP/server$i.properties" >"$TMP/broker$i.log" 2>&1 &
	BPIDS+=($!)
	SEEDS+="${SEEDS:+,}127.0.0.1:$port"
done
# Ready when every broker's metadata lists three brokers.
for _ in $(seq 300); do
	n=0
	for i in 1 2 3; do
		if curl -fsS "http://127.0.0.1:${P[$((i + 8))]}/healthz" >/dev/null 2>&1; then n=$((n + 1)); fi
	done
	[[ $n == 3 ]] && break
	sleep 0.1
done
[[ $n == 3 ]] || { echo "cluster did not come up" >&2; tail -20 "$TMP"/*.log >&2; exit 1; }
echo "drover cluster: seeds $SEEDS (coordinators $CONNECT)" >&2
ADMINS="127.0.0.1:${P[9]},127.0.0.1:${P[10]},127.0.0.1:${P[11]}"
export SEEDS ADMINS
if [[ "${HOLD:-}" == 1 ]]; then
	echo "holding; Ctrl-C stops the cluster" >&2
	while true; do sleep 3600; done
fi
if [[ -n "${RUN:-}" ]]; then
	bash -c "$RUN"
	exit $?
fi
DIR=$(go mod download -json "github.com/twmb/franz-go@$FRANZ_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
echo "kgo suite: franz-go $FRANZ_VERSION against a 3-broker drover cluster, KGO_TEST_RF=3" >&2
start=$(date +%s)
set +e
(cd "$DIR/pkg/kgo" && KGO_SEEDS=$SEEDS KGO_TEST_RF=3 KGO_TEST_RECORDS=${KGO_TEST_RECORDS:-20000} \
	GOFLAGS=-mod=mod go test -count=1 -skip TestTxnEtl "$@" .)
rc=$?
set -e
echo "kgo suite: exit $rc after $(($(date +%s) - start))s" >&2
if [[ $rc != 0 ]]; then for i in 1 2 3; do echo "== broker$i" >&2; tail -30 "$TMP/broker$i.log" >&2; done; fi
exit $rc
