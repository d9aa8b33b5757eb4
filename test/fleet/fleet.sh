#!/usr/bin/env bash
# fleet.sh: drover's local fleet of EC2-like hosts for tests and the demo.
#
# A node is a systemd-nspawn container that boots real systemd as PID 1, with its own network
# namespace (10.77.K.(10+i) on a host bridge), a real OpenSSH server (key login as root and as
# ec2-user with passwordless sudo, like Amazon Linux) and its own overlay filesystem over one shared,
# cached, debootstrapped Debian rootfs. No Docker, no systemd on the host needed.
#
# usage: fleet.sh up N | down | status | ssh-config [user] | ssh NODE [cmd...] | rootfs | env
#
# Several fleets can coexist: FLEET_ID=K (0-9, default 0) selects subnet 10.77.K.0/24, bridge
# dflbrK and state dir $FLEET_STATE_ROOT/K. After `up`, the state dir holds:
#   ssh_config   Host node1..nodeN (HostName, User ec2-user, IdentityFile, known hosts file)
#   known_hosts  the nodes' host keys, scanned at boot, so strict host key checking works
#   id_ed25519   the fleet's login key
# Knobs: FLEET_CACHE (rootfs cache, default /var/cache/drover-fleet), FLEET_STATE_ROOT (default
# /run/drover-fleet), FLEET_MIRROR, FLEET_PYTHON=1 (rootfs variant with python3, for Ansible).
set -euo pipefail

FLEET_ID=${FLEET_ID:-0}
[[ "$FLEET_ID" =~ ^[0-9]$ ]] || { echo "fleet: FLEET_ID must be 0-9" >&2; exit 2; }
CACHE=${FLEET_CACHE:-/var/cache/drover-fleet}
VARIANT=base; [ "${FLEET_PYTHON:-0}" = 1 ] && VARIANT=python
ROOTFS=$CACHE/rootfs-$VARIANT
STATE=${FLEET_STATE_ROOT:-/run/drover-fleet}/$FLEET_ID
KEY=$STATE/id_ed25519
NET=10.77.$FLEET_ID
BR=dflbr$FLEET_ID
CG=drover-fleet-$FLEET_ID
MIRROR=${FLEET_MIRROR:-http://deb.debian.org/debian}
PKGS=systemd,systemd-sysv,dbus,openssh-server,sudo,iproute2,procps,libpam-systemd,ca-certificates,netcat-openbsd
[ "$VARIANT" = python ] && PKGS=$PKGS,python3-minimal,python3-apt
SSH=(ssh -i "$KEY" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
     -o BatchMode=yes -o ConnectTimeout=3)

log() { printf '[fleet%s %s] %s\n' "$FLEET_ID" "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
t0=$(date +%s.%N)
elapsed() { awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}'; }

[ "$(id -u)" = 0 ] || die "must run as root (network namespaces, mounts, nspawn)"

# --- cgroups ------------------------------------------------------------------------------
# Without systemd on the host every nspawn creates its payload cgroups at the hierarchy root and
# nodes collide; each node's launcher therefore moves itself into its own subtree first, in the
# cgroup2 hierarchy and (on hybrid hosts) in the name=systemd v1 hierarchy.
CG2=; CG1=
if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then CG2=/sys/fs/cgroup
else
  [ "$(stat -fc %T /sys/fs/cgroup/unified 2>/dev/null)" = cgroup2fs ] && CG2=/sys/fs/cgroup/unified
  [ -e /sys/fs/cgroup/systemd/cgroup.procs ] && CG1=/sys/fs/cgroup/systemd
fi
[ -n "$CG2" ] || die "no cgroup2 hierarchy (need /sys/fs/cgroup or /sys/fs/cgroup/unified)"
cgdirs() { echo "$CG2/$CG${1:+/$1}"; [ -z "$CG1" ] || echo "$CG1/$CG${1:+/$1}"; }
cgprocs() { [ -d "$CG2/$CG/$1" ] && find "$CG2/$CG/$1" -name cgroup.procs -exec cat {} + 2>/dev/null; true; }
cgrm() { local d; for d in "$@"; do [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null; done; true; }

# --- host packages and the cached rootfs -------------------------------------------------------
deps() {
  local need=() c p
  for c in debootstrap:debootstrap systemd-nspawn:systemd-container ssh:openssh-client ssh-keyscan:openssh-client; do
    command -v "${c%%:*}" >/dev/null || need+=("${c##*:}")
  done
  # Ubuntu hosts need Debian's archive key to debootstrap bookworm
  [ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || need+=(debian-archive-keyring)
  if [ ${#need[@]} -gt 0 ]; then
    log "installing host packages: ${need[*]}"
    apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null \
      || die "apt-get install ${need[*]} failed"
  fi
}

rootfs() {
  [ -f "$ROOTFS/.ready" ] && return 0
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.lock-$VARIANT"; flock 9            # one builder at a time across fleets
  [ -f "$ROOTFS/.ready" ] && return 0
  deps
  local R=$ROOTFS.tmp
  rm -rf "$R"
  log "building the $VARIANT rootfs with debootstrap (once, ~2 min) -> $ROOTFS"
  debootstrap --variant=minbase --keyring=/usr/share/keyrings/debian-archive-keyring.gpg --include="$PKGS" bookworm "$R" "$MIRROR" >"$CACHE/debootstrap-$VARIANT.log" 2>&1 \
    || die "debootstrap failed; see $CACHE/debootstrap-$VARIANT.log"
  rm -f "$R"/etc/ssh/ssh_host_*                       # every node makes its own on first boot
  : >"$R/etc/machine-id"; rm -f "$R/var/lib/dbus/machine-id"; ln -s /etc/machine-id "$R/var/lib/dbus/machine-id"
  echo '# drover fleet: isolated network, no DNS' >"$R/etc/resolv.conf"
  chroot "$R" useradd -m -s /bin/bash -G sudo ec2-user
  printf 'ec2-user ALL=(ALL) NOPASSWD:ALL\n' >"$R/etc/sudoers.d/90-ec2-user"; chmod 440 "$R/etc/sudoers.d/90-ec2-user"
  printf 'PermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\nMaxStartups 100:30:200\n' \
    >"$R/etc/ssh/sshd_config.d/fleet.conf"
  cat >"$R/etc/systemd/system/fleet-hostkeys.service" <<'EOF'
[Unit]
Description=SSH host keys for this node (first boot)
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key
[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A
RemainAfterExit=yes
[Install]
WantedBy=multi-user.target ssh.service
EOF
  chroot "$R" systemctl enable fleet-hostkeys.service >/dev/null 2>&1
  chroot "$R" systemctl mask apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer \
    fstrim.timer e2scrub_reap.service getty@tty1.service systemd-pstore.service >/dev/null 2>&1
  chroot "$R" apt-get clean
  touch "$R/.ready"; mv "$R" "$ROOTFS"
  log "rootfs ready after $(elapsed)s ($(du -sh "$ROOTFS" | cut -f1))"
}

# --- nodes ----------------------------------------------------------------------------------
ip_of() { echo "$NET.$((10 + ${1#node}))"; }
nodes() { local d; for d in "$STATE"/nodes/node*; do [ -d "$d" ] && basename "$d"; done | sort -V; true; }
# ours PID NODE: the PID is alive and is the launcher this script started for NODE (never by name)
ours() { [ -n "$1" ] && [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -q -- " drover-fleet-launcher $STATE/nodes/$2 "; }
banner() { timeout 1 bash -c "exec 3<>/dev/tcp/$1/22 && head -c 4 <&3" 2>/dev/null | grep -q SSH; }

# The launcher joins the node's cgroups, records its PID, runs nspawn, forwards SIGTERM (clean halt
# of the node's systemd) and re-runs nspawn when the node reboots itself (exit status 133).
LAUNCHER='
d=$1; cgs=$2; shift 2
for c in $cgs; do echo $$ >"$c/cgroup.procs"; done
echo $$ >"$d/pid.tmp"; mv "$d/pid.tmp" "$d/pid"
stop=0; child=
trap "stop=1; [ -n \"\$child\" ] && kill -TERM \$child 2>/dev/null" TERM INT HUP
while :; do
  "$@" & child=$!
  rc=0; wait $child || rc=$?
  while kill -0 $child 2>/dev/null; do rc=0; wait $child || rc=$?; done
  [ $stop = 0 ] && [ $rc = 133 ] || break
  echo "--- drover fleet: node rebooting ---"
done
exit $rc'

start() {
  local n=$1 ip d ns=dfl$FLEET_ID-$1 veth=dfl${FLEET_ID}v${1#node}
  ip=$(ip_of "$n"); d=$STATE/nodes/$n
  mkdir -p "$d"/upper "$d"/work "$d"/root
  echo "$ns" >"$d/netns"; ip netns add "$ns"
  echo "$veth" >"$d/veth"; ip link add "$veth" type veth peer name eth0 netns "$ns"
  sysctl -qw "net.ipv6.conf.$veth.disable_ipv6=1"
  ip link set "$veth" master "$BR" up
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.eth0.disable_ipv6=1
  ip -n "$ns" link set lo up; ip -n "$ns" addr add "$ip/24" dev eth0; ip -n "$ns" link set eth0 up
  mount -t overlay overlay -o "lowerdir=$ROOTFS,upperdir=$d/upper,workdir=$d/work" "$d/root"
  # nspawn's image lock survives a SIGKILLed nspawn; remember its name so down can remove it
  stat -c '/run/systemd/nspawn/locks/inode-%d:%i' "$d/root" >"$d/lock"
  echo "$n" >"$d/root/etc/hostname"
  tr -d - </proc/sys/kernel/random/uuid >"$d/root/etc/machine-id"
  { echo "127.0.0.1 localhost $n"; echo "$NET.1 fleet-host"; echo "$HOSTS"; } >"$d/root/etc/hosts"
  local h; for h in root home/ec2-user; do
    install -d -m700 "$d/root/$h/.ssh"; install -m600 "$KEY.pub" "$d/root/$h/.ssh/authorized_keys"
  done
  chroot "$d/root" chown -R ec2-user:ec2-user /home/ec2-user/.ssh
  local c; for c in $(cgdirs "$n"); do mkdir -p "$c"; done
  local env=(SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1)
  env "${env[@]}" setsid -f sh -c "$LAUNCHER" drover-fleet-launcher "$d" "$(cgdirs "$n" | tr '\n' ' ')" \
    systemd-nspawn -D "$d/root" -b -M "fl$FLEET_ID$n" --network-namespace-path="/run/netns/$ns" \
      --register=no --keep-unit --console=read-only --link-journal=no --resolv-conf=off --timezone=off \
      --capability=CAP_NET_ADMIN,CAP_IPC_LOCK </dev/null >"$d/console.log" 2>&1
  local i; for i in $(seq 50); do [ -s "$d/pid" ] && return 0; sleep 0.1; done
  die "$n: launcher did not start; see $d/console.log"
}

up() {
  local n=${1:-}
  [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 50 ] || die "usage: fleet.sh up N   (N = 1..50)"
  [ -z "$(nodes)" ] || die "fleet $FLEET_ID already has nodes ($(nodes | xargs)); run 'fleet.sh down' first"
  deps; rootfs
  t0=$(date +%s.%N)
  mkdir -p "$STATE/nodes"
  [ -f "$KEY" ] || ssh-keygen -q -t ed25519 -N '' -C drover-fleet -f "$KEY"
  # remember the host state we are about to change, so down restores exactly that
  { mountpoint -q /run/netns 2>/dev/null && echo netns_mounted=1 || echo netns_mounted=0
    [ -d /run/netns ] && echo netns_dir=1 || echo netns_dir=0
    [ -d /run/systemd/nspawn ] && echo nspawn_dir=1 || echo nspawn_dir=0
    ip link show "$BR" >/dev/null 2>&1 && echo bridge=0 || echo bridge=1; } >"$STATE/host.env"
  if ! ip link show "$BR" >/dev/null 2>&1; then
    ip link add "$BR" type bridge; sysctl -qw "net.ipv6.conf.$BR.disable_ipv6=1"
    ip addr add "$NET.1/24" dev "$BR"; ip link set "$BR" up
  fi
  HOSTS=$(for i in $(seq "$n"); do echo "$(ip_of node$i) node$i"; done)
  local i; for i in $(seq "$n"); do start "node$i"; done
  log "$n nodes launched after $(elapsed)s; waiting for sshd and systemd"
  local fail=0 ip
  for i in $(seq "$n"); do
    ip=$(ip_of node$i)
    for t in $(seq 600); do
      banner "$ip" && break
      ours "$(cat "$STATE/nodes/node$i/pid")" "node$i" || { log "node$i: nspawn exited; see $STATE/nodes/node$i/console.log"; fail=1; break; }
      sleep 0.05
    done
  done
  : >"$STATE/known_hosts.tmp"
  for i in $(seq "$n"); do
    ip=$(ip_of node$i)
    st=$(timeout 90 "${SSH[@]}" "root@$ip" systemctl is-system-running --wait 2>&1 || true)
    [ "$st" = running ] || { log "node$i ($ip): is-system-running=$st"; fail=1; }
    ssh-keyscan -T 3 -t ed25519 "$ip" 2>/dev/null | sed "s/^$ip /node$i,$ip /" >>"$STATE/known_hosts.tmp"
  done
  mv "$STATE/known_hosts.tmp" "$STATE/known_hosts"
  sshconfig ec2-user >"$STATE/ssh_config"
  [ $fail = 0 ] || die "some nodes did not come up; inspect $STATE/nodes/*/console.log, then run 'fleet.sh down'"
  log "fleet of $n up in $(elapsed)s; ssh config: $STATE/ssh_config (try: ssh -F $STATE/ssh_config node1)"
  echo "$STATE/ssh_config"
}

down() {
  local all n d pid procs="" t
  all=$(nodes)
  for n in $all; do procs="$procs $(cgprocs "$n" | xargs)"; done
  for n in $all; do      # SIGTERM the launchers: nspawn halts the node's systemd cleanly
    pid=$(cat "$STATE/nodes/$n/pid" 2>/dev/null || true)
    ours "$pid" "$n" && kill -TERM "$pid" 2>/dev/null || true
  done
  for n in $all; do
    d=$STATE/nodes/$n; pid=$(cat "$d/pid" 2>/dev/null || true)
    for t in $(seq 300); do ours "$pid" "$n" || break; sleep 0.1; done
    if ours "$pid" "$n" || [ -n "$(cgprocs "$n")" ]; then
      log "$n: still running, killing its cgroup"
      if [ -e "$CG2/$CG/$n/cgroup.kill" ]; then echo 1 >"$CG2/$CG/$n/cgroup.kill"
      else for p in $(cgprocs "$n"); do kill -KILL "$p" 2>/dev/null || true; done; fi
      for t in $(seq 50); do [ -z "$(cgprocs "$n")" ] && break; sleep 0.1; done
    fi
    cgrm $(cgdirs "$n")
    mountpoint -q "$d/root" && { umount "$d/root" 2>/dev/null || { sleep 1; umount -l "$d/root"; }; }
    [ -f "$d/lock" ] && rm -f "$(cat "$d/lock")"
    [ -f "$d/netns" ] && { ip netns del "$(cat "$d/netns")" 2>/dev/null || true; }
    [ -f "$d/veth" ] && { ip link del "$(cat "$d/veth")" 2>/dev/null || true; }
    rm -rf "$d"
  done
  cgrm $(cgdirs "")
  if [ -f "$STATE/host.env" ]; then
    local netns_mounted=1 netns_dir=1 nspawn_dir=1 bridge=0
    . "$STATE/host.env"
    [ "$bridge" = 1 ] && { ip link del "$BR" 2>/dev/null || true; }
    # `ip netns add` made /run/netns a bind mount; undo it only if we did and nobody else uses it
    if [ "$netns_mounted" = 0 ] && mountpoint -q /run/netns && [ -z "$(ls -A /run/netns)" ]; then umount /run/netns; fi
    if [ "$netns_dir" = 0 ] && [ -d /run/netns ] && ! mountpoint -q /run/netns; then rmdir /run/netns 2>/dev/null || true; fi
    [ "$nspawn_dir" = 0 ] && { find /run/systemd/nspawn -depth -type d -exec rmdir {} \; 2>/dev/null || true; }
  fi
  rm -rf "$STATE"
  # exited processes stay zombies until the host's PID 1 reaps them, which here takes a moment
  local alive; for t in $(seq 100); do
    alive=""; for p in $procs; do [ -e "/proc/$p" ] && ! grep -q '^State:.*Z' "/proc/$p/status" 2>/dev/null && alive="$alive $p"; done
    [ -z "$alive" ] && break; sleep 0.1
  done
  local left=""
  [ -n "$alive" ] && left="$left processes:$alive;"
  mount | grep -q " $STATE/" && left="$left mounts;"
  ip netns list 2>/dev/null | grep -q "^dfl$FLEET_ID-" && left="$left netns;"
  ip -br link 2>/dev/null | grep -Eq "^(dflbr$FLEET_ID|dfl${FLEET_ID}v)" && left="$left links;"
  [ -d "$CG2/$CG" ] && left="$left cgroup $CG2/$CG;"
  [ -z "$left" ] || die "down left something behind:$left"
  log "down: nothing left behind"
}

status() {
  local all n d pid
  all=$(nodes)
  [ -n "$all" ] || { echo "fleet $FLEET_ID: no nodes"; return 0; }
  printf '%-7s %-13s %-10s %-5s %s\n' NODE ADDRESS LAUNCHER SSH SYSTEMD
  for n in $all; do
    d=$STATE/nodes/$n; pid=$(cat "$d/pid" 2>/dev/null || true); ip=$(ip_of "$n")
    ours "$pid" "$n" && p=pid$pid || p=DEAD
    banner "$ip" && s=up || s=down
    st=$(timeout 10 "${SSH[@]}" "root@$ip" systemctl is-system-running 2>/dev/null || true)
    printf '%-7s %-13s %-10s %-5s %s\n' "$n" "$ip" "$p" "$s" "${st:-?}"
  done
}

sshconfig() {
  local user=${1:-ec2-user} n
  for n in $(nodes); do
    printf 'Host %s\n    HostName %s\n    User %s\n    IdentityFile %s\n    IdentitiesOnly yes\n    UserKnownHostsFile %s\n    StrictHostKeyChecking yes\n    LogLevel ERROR\n\n' \
      "$n" "$(ip_of "$n")" "$user" "$KEY" "$STATE/known_hosts"
  done
}

case "${1:-}" in
  up) shift; up "$@" ;;
  down) down ;;
  status) status ;;
  ssh-config) shift; sshconfig "$@" ;;
  ssh) shift; n=${1:?usage: fleet.sh ssh NODE [cmd...]}; shift; exec "${SSH[@]}" "root@$(ip_of "$n")" "$@" ;;
  rootfs) deps; rootfs ;;
  env) echo "FLEET_STATE=$STATE"; echo "FLEET_SSH_CONFIG=$STATE/ssh_config"; echo "FLEET_NODES=$(nodes | paste -sd,)" ;;
  *) sed -n '2,18p' "$0" >&2; exit 2 ;;
esac
