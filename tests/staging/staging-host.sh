#!/usr/bin/env bash
# staging-host.sh - a real Debian host for deployer's end-to-end tests.
#
# A cached debootstrap root (bookworm minbase + systemd, OpenSSH, sudo, python3)
# booted with `systemd-nspawn -b` over a fresh overlay, in a network namespace of
# its own joined to the machine by a veth pair.  Every `up` makes a fresh client
# key and host key.  Several guests can run at once, one per STAGING_INDEX.
#
# Usage: staging-host.sh COMMAND
#   build [--force]          debootstrap + configure the shared rootfs (cached)
#   up                       boot guest STAGING_INDEX; prints STAGING_*=... lines
#                            (exit status 3: that guest is already up, and was left alone)
#   down                     stop it and remove everything `up` made (idempotent)
#   status                   running or stopped, pids, systemd state, ssh probe
#   ssh [CMD...]             ssh into the guest as the deploy user
#   exec CMD...              run CMD as root inside the guest (nsenter)
#   cut sessions [SIG]       kill the guest's per-connection sshd processes
#   cut reset                the guest answers every packet to :22 with a TCP RST
#   cut link-down|link-up    take the link down (packets vanish) / bring it back
#   cut heal                 undo every cut
#   throttle RATE|off        rate-limit machine -> guest (tbf), e.g. 8mbit
#   fill-disk FREE_MB|clear  leave FREE_MB free on /opt/tg_video_streamer (tmpfs only)
#   env                      print the running guest's STAGING_* lines
#
# Environment:
#   STAGING_INDEX=100        which guest (0..199): machine dstage<i>, 10.231.<50+i>.2;
#                            100, the default, is the guest for `make demo` and trying
#                            things by hand: the test suite never boots it
#   STAGING_DIR=...          cache + state (default $HOME/.cache/deployer-staging)
#   STAGING_OPT_SIZE=64M     mount a tmpfs of that size at /opt/tg_video_streamer
#   STAGING_NET=netns        the only network mode
#   STAGING_MIRROR=URL       Debian mirror for build (default: the one apt uses)
#   STAGING_BOOT_TIMEOUT=90  seconds `up` waits for ssh + systemd
set -euo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C

SELF=$(readlink -f "${BASH_SOURCE[0]}")
IDX=${STAGING_INDEX:-100}   # keep in step with DEMO_INDEX (harness.py) and mk/staging.mk
[[ $IDX =~ ^(0|[1-9][0-9]?|1[0-9][0-9])$ ]] || { echo "STAGING_INDEX must be 0..199" >&2; exit 2; }
: "${HOME:=$(getent passwd "$(id -u)" | cut -d: -f6)}"
STATE=${STAGING_DIR:-$HOME/.cache/deployer-staging}
RUN=$STATE/run$IDX
MACHINE=dstage$IDX
NETNS=dstage$IDX
VETH_H=dst${IDX}h
VETH_G=dst${IDX}g
NET=10.231.$((50 + IDX))
HOST_ADDR=$NET.1
GUEST=$NET.2
CG=deployer-staging-$IDX
APP=tg_video_streamer
DUSER=tgstream
BOOT_TIMEOUT=${STAGING_BOOT_TIMEOUT:-90}

log() { printf '[staging%s] %s\n' "$IDX" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

[[ $(id -u) == 0 ]] || die "must run as root"
[[ ${STAGING_NET:-netns} == netns ]] || die "STAGING_NET: only 'netns' is supported"

ensure_host_tools() {
  local missing=()
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  [[ -e /usr/share/keyrings/debian-archive-keyring.gpg ]] || missing+=(debian-archive-keyring)
  command -v systemd-nspawn >/dev/null || missing+=(systemd-container)
  command -v iptables >/dev/null || missing+=(iptables)
  command -v ssh >/dev/null && command -v ssh-keygen >/dev/null || missing+=(openssh-client)
  command -v ip >/dev/null && command -v tc >/dev/null || missing+=(iproute2)
  ((${#missing[@]})) || return 0
  log "installing host packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null; } \
    || die "could not install ${missing[*]}"
}

# The Debian mirror this machine's apt already uses (none on e.g. Ubuntu: then deb.debian.org).
debian_mirror() {
  local m=${STAGING_MIRROR:-}
  [[ -n $m ]] || m=$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
    | awk '($1 == "URIs:" || $1 == "deb") && $2 ~ /^https?:\/\/.*\/debian\/?$/ { print $2; exit }' || true)
  echo "${m:-http://deb.debian.org/debian}"
}

# Remove a tree without ever following a mount out of it (debootstrap may leave
# /proc or /sys mounted in its target when it fails).
remove_tree() {
  [[ -e $1 ]] || return 0
  local mounts
  mounts=$(findmnt -rn -o TARGET | grep -F "$1/" || true)
  [[ -z $mounts ]] || sort -r <<<"$mounts" | xargs -d '\n' umount -l
  rm -rf --one-file-system "$1"
}

# ------------------------------------------------------------------ build: begin
# Everything between the build markers is hashed: changing it makes a new rootfs.
SUITE=bookworm
PKGS=systemd,systemd-sysv,dbus,openssh-server,sudo,python3,python3-venv,python3-pip,iproute2,procps,curl,ca-certificates

configure_rootfs() {
  local R=$1
  echo staging >"$R/etc/hostname"
  printf '127.0.0.1\tlocalhost\n127.0.1.1\tstaging\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$R/etc/hosts"
  echo 'LANG=C.UTF-8' >"$R/etc/default/locale"
  : >"$R/etc/resolv.conf"
  # empty machine-id and no D-Bus copy: the guest makes a fresh id every boot
  : >"$R/etc/machine-id"
  rm -f "$R/var/lib/dbus/machine-id"

  chroot "$R" useradd -m -u 1000 -U -s /bin/bash "$DUSER"
  # '*' = no password but not locked: a locked ('!') account cannot use its key without PAM
  chroot "$R" usermod -p '*' "$DUSER"
  chroot "$R" passwd -l root >/dev/null
  install -d -m 700 -o 1000 -g 1000 "$R/home/$DUSER/.ssh"

  rm -f "$R"/etc/ssh/ssh_host_*
  cat >"$R/etc/ssh/sshd_config.d/10-staging.conf" <<'EOF'
HostKey /etc/ssh/ssh_host_ed25519_key
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
UseDNS no
EOF
  chroot "$R" systemctl mask -q apt-daily.timer apt-daily-upgrade.timer \
    console-getty.service systemd-networkd-wait-online.service

  chroot "$R" apt-get clean
  rm -rf "$R"/var/lib/apt/lists/* "$R"/var/cache/apt/*.bin "$R"/var/log/*.log
}

bootstrap_rootfs() {
  debootstrap --variant=minbase --include="$PKGS" "$SUITE" "$1" "$(debian_mirror)"
}
# ------------------------------------------------------------------ build: end

build_hash() {
  sed -n '/^# -* build: begin$/,/^# -* build: end$/p' "$SELF" | sha256sum | cut -c1-12
}
ROOTFS=$STATE/rootfs-$(build_hash)

in_use_as_lowerdir() { grep -qF "lowerdir=$1," /proc/self/mountinfo; }

build_locked() {
  local force=${1:-}
  if [[ -f $ROOTFS/.built && $force != --force ]]; then
    log "rootfs cached: $ROOTFS"
    return 0
  fi
  in_use_as_lowerdir "$ROOTFS" && die "$ROOTFS is in use by a running guest; run down first"
  ensure_host_tools
  local t0 tmp=$ROOTFS.tmp
  t0=$(now)
  mkdir -p "$STATE/logs"
  remove_tree "$tmp"
  log "debootstrap $SUITE from $(debian_mirror) (log: $STATE/logs/debootstrap.log)"
  bootstrap_rootfs "$tmp" >"$STATE/logs/debootstrap.log" 2>&1 \
    || { remove_tree "$tmp"; die "debootstrap failed, see $STATE/logs/debootstrap.log"; }
  configure_rootfs "$tmp"
  remove_tree "$ROOTFS"
  mv "$tmp" "$ROOTFS"
  date -u +%FT%TZ >"$ROOTFS/.built"
  local old
  for old in "$STATE"/rootfs-*; do   # rootfs of an older build section, unless a guest uses it
    [[ -d $old && $old != "$ROOTFS" && $old != *.tmp ]] || continue
    in_use_as_lowerdir "$old" || remove_tree "$old"
  done
  log "built $ROOTFS in $(since "$t0")s ($(du -sh "$ROOTFS" | cut -f1))"
}

build() {
  mkdir -p "$STATE"
  # serialise builds of concurrent `up`s; the subshell keeps the lock fd away from nspawn
  (flock 9 && build_locked "$@") 9>"$STATE/build.lock"
}

# ------------------------------------------------------------------ state
# A pid from our run dir counts only if it is still the process we started.
nspawn_pid() {
  local p
  p=$(cat "$RUN/nspawn.pid" 2>/dev/null) || return 1
  [[ $(cat "/proc/$p/comm" 2>/dev/null) == systemd-nspawn ]] || return 1
  [[ $(awk '{ print $3 }' "/proc/$p/stat" 2>/dev/null) != Z ]] || return 1   # a SIGKILLed nspawn lingers as a zombie
  [[ " $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)" == *" -M$MACHINE "* ]] || return 1
  echo "$p"
}

# The guest's PID 1: a child of nspawn in another pid namespace.
find_leader() {
  local p c kids
  p=$(nspawn_pid) || return 1
  kids=$(cat /proc/"$p"/task/*/children 2>/dev/null)
  for c in $kids; do
    if [[ $(readlink "/proc/$c/ns/pid") != "$(readlink "/proc/$p/ns/pid")" ]]; then
      echo "$c"; return 0
    fi
  done
  return 1
}

# The recorded guest init, if it still is that process (comm + pid namespace).
recorded_leader() {
  local l
  l=$(cat "$RUN/leader.pid" 2>/dev/null) || return 1
  [[ $(cat "/proc/$l/comm" 2>/dev/null) == systemd ]] || return 1
  [[ $(readlink "/proc/$l/ns/pid") == "$(cat "$RUN/leader.pidns" 2>/dev/null)" ]] || return 1
  echo "$l"
}

load_env() {
  if [[ ! -f $RUN/env ]] || ! nspawn_pid >/dev/null; then die "guest $IDX is not up"; fi
  # shellcheck disable=SC1091
  source "$RUN/env"
}

# Nothing is sent to the guest unless the kernel would send it over our own veth.
require_route() {
  local r
  r=$(ip -o -4 route get "$GUEST" 2>&1) || die "no route to $GUEST: $r"
  [[ " $r " == *" dev $VETH_H "* && " $r " != *" via "* ]] \
    || die "route to $GUEST does not go over $VETH_H ($r); refusing to send"
}

ssh_argv() {
  SSH=(ssh -i "$RUN/id_ed25519" -p 22 -o UserKnownHostsFile="$RUN/known_hosts"
    -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o BatchMode=yes
    -o IdentitiesOnly=yes -o ConnectTimeout=3 -o ServerAliveInterval=1 -o LogLevel=ERROR
    "$DUSER@$GUEST")
}

gexec() {
  local l
  l=$(recorded_leader || find_leader) || die "guest $IDX is not running"
  nsenter -t "$l" -m -u -i -n -p -C -r -w -- env -i \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"
}

cg_dirs() {
  local root=/sys/fs/cgroup
  if [[ -d $root/systemd ]]; then           # hybrid: name=systemd + unified
    echo "$root/systemd/$CG"
    [[ -d $root/unified ]] && echo "$root/unified/$CG"
  elif [[ $(stat -fc %T $root 2>/dev/null) == cgroup2fs && -w $root ]]; then
    echo "$root/$CG"
  fi
  return 0
}

# ------------------------------------------------------------------ up / down
setup_network() {
  [[ -z $(ip -o -4 addr show to "$NET.0/30") ]] || die "$NET.0/30 is already in use on this machine"
  ip netns add "$NETNS"
  ip link add "$VETH_H" type veth peer name "$VETH_G" netns "$NETNS"
  ip addr add "$HOST_ADDR/30" dev "$VETH_H"
  ip link set "$VETH_H" up
  # if the veth's own route ever disappears, the guest's address must not fall to the default route
  ip route replace unreachable "$NET.0/30" metric 4242
  ip -n "$NETNS" link set lo up
  ip -n "$NETNS" addr add "$GUEST/30" dev "$VETH_G"
  ip -n "$NETNS" link set "$VETH_G" up
}

# Every guest's systemd, journald, udevd and logind take inotify instances of root's on
# the host (no user namespace): the kernel's default of 128 lasts for about 15 guests, and
# a guest past it dies at boot ("Failed to allocate manager object: Too many open files").
INOTIFY_INSTANCES=8192

raise_inotify_limit() {
  local now
  now=$(cat /proc/sys/fs/inotify/max_user_instances)
  if ((now < INOTIFY_INSTANCES)); then
    echo "$INOTIFY_INSTANCES" >/proc/sys/fs/inotify/max_user_instances
    log "fs.inotify.max_user_instances: $now -> $INOTIFY_INSTANCES (one guest takes about 7)"
  fi
}

up() {
  [[ -f $ROOTFS/.built ]] || build
  ensure_host_tools
  # exit 3, before anything is touched: the harness must not take down a guest it did not boot
  if nspawn_pid >/dev/null; then log "ERROR: guest $IDX is already up; run down first"; exit 3; fi
  down_quiet
  trap '[[ -n ${UP_DONE:-} ]] || { log "up failed: cleaning up"; down_quiet; }' EXIT
  raise_inotify_limit
  local t0 M=$RUN/merged
  t0=$(now)
  mkdir -p "$RUN"/{upper,work,merged}
  mount -t overlay "staging$IDX" -o "lowerdir=$ROOTFS,upperdir=$RUN/upper,workdir=$RUN/work" "$M"
  stat -c 'inode-%d:%i' "$M" >"$RUN/lockname"   # name of nspawn's image lock in /run/systemd/nspawn/locks

  echo "$MACHINE" >"$M/etc/hostname"
  sed -i "s/^127\.0\.1\.1\s.*/127.0.1.1\t$MACHINE/" "$M/etc/hosts"
  ssh-keygen -q -t ed25519 -N '' -C "deployer-staging-$IDX" -f "$RUN/id_ed25519"
  install -m 600 -o 1000 -g 1000 "$RUN/id_ed25519.pub" "$M/home/$DUSER/.ssh/authorized_keys"
  ssh-keygen -q -t ed25519 -N '' -C "root@$MACHINE" -f "$M/etc/ssh/ssh_host_ed25519_key"
  echo "$GUEST $(cut -d' ' -f1,2 "$M/etc/ssh/ssh_host_ed25519_key.pub")" >"$RUN/known_hosts"

  setup_network
  local args=(-D "$M" -b "-M$MACHINE" --register=no --keep-unit --console=passive
    --link-journal=no --resolv-conf=off "--network-namespace-path=/run/netns/$NETNS")
  [[ -z ${STAGING_OPT_SIZE:-} ]] || args+=("--tmpfs=/opt/$APP:size=$STAGING_OPT_SIZE,mode=0755")

  # Without a host systemd, nspawn (--register=no --keep-unit) makes payload/ and
  # supervisor/ below its own cgroup: start it in a dedicated one we can remove.
  local d procs=()
  for d in $(cg_dirs); do mkdir -p "$d"; procs+=("$d/cgroup.procs"); done
  # The launcher records its own pid (nspawn's, after the exec) itself: setsid may fork.
  # shellcheck disable=SC2016
  setsid bash -c 'echo $$ >"$1"; for f in "${@:3:$2}"; do echo $$ >"$f"; done; shift $(($2 + 2)); exec systemd-nspawn "$@"' \
    _ "$RUN/nspawn.pid" "${#procs[@]}" "${procs[@]}" "${args[@]}" </dev/null >"$RUN/nspawn.log" 2>&1 &
  local npid=""
  for _ in $(seq 200); do   # until the exec: right after the fork the comm is still bash
    npid=$(cat "$RUN/nspawn.pid" 2>/dev/null || true)
    [[ -n $npid && $(cat "/proc/$npid/comm" 2>/dev/null) == systemd-nspawn ]] && break
    sleep 0.05
  done

  require_route
  ssh_argv
  local state="" leader="" deadline=$((SECONDS + BOOT_TIMEOUT))
  while :; do
    nspawn_pid >/dev/null || { cat "$RUN/nspawn.log" >&2; die "systemd-nspawn exited during boot"; }
    if [[ -z $leader ]] && leader=$(find_leader); then   # recorded early: `down` may need it
      echo "$leader" >"$RUN/leader.pid"
      readlink "/proc/$leader/ns/pid" >"$RUN/leader.pidns"
    fi
    state=$("${SSH[@]}" systemctl is-system-running --wait 2>/dev/null) || true
    [[ $state == running || $state == degraded ]] && break
    ((SECONDS < deadline)) || die "guest not ready after ${BOOT_TIMEOUT}s (state '$state')"
    sleep 0.1
  done
  [[ -n $leader ]] || die "cannot find the guest's init"

  cat >"$RUN/env.tmp" <<EOF
STAGING_HOST=$GUEST
STAGING_PORT=22
STAGING_USER=$DUSER
STAGING_KEY=$RUN/id_ed25519
STAGING_KNOWN_HOSTS=$RUN/known_hosts
STAGING_INDEX=$IDX
STAGING_MACHINE=$MACHINE
STAGING_VETH=$VETH_H
STAGING_NSPAWN_PID=$npid
STAGING_LEADER_PID=$leader
EOF
  mv "$RUN/env.tmp" "$RUN/env"
  UP_DONE=1
  log "up in $(since "$t0")s: systemd $state, ssh $DUSER@$GUEST"
  [[ $state == running ]] || gexec systemctl --failed --no-pager >&2 || true
  cat "$RUN/env"
}

down_quiet() {
  local p l
  if p=$(nspawn_pid); then
    l=$(recorded_leader || find_leader || true)
    kill -TERM "$p"   # nspawn forwards it as SIGRTMIN+3: a clean poweroff of the guest
    for _ in $(seq 200); do [[ -d /proc/$p ]] || break; sleep 0.1; done
    if [[ -d /proc/$p ]]; then
      log "nspawn $p still running after 20s: SIGKILL"
      [[ -z $l ]] || kill -KILL "$l" 2>/dev/null || true
      kill -KILL "$p" 2>/dev/null || true
      sleep 0.3
    fi
  fi
  if l=$(recorded_leader); then   # nspawn died (e.g. SIGKILL) but left the guest's init behind
    log "orphaned guest init $l: poweroff"
    kill -s RTMIN+4 "$l" 2>/dev/null || true
    for _ in $(seq 100); do [[ -d /proc/$l ]] || break; sleep 0.1; done
    if l=$(recorded_leader); then kill -KILL "$l" 2>/dev/null || true; sleep 0.3; fi
  fi
  if mountpoint -q "$RUN/merged" 2>/dev/null; then
    umount "$RUN/merged" 2>/dev/null || { sleep 1; umount "$RUN/merged" 2>/dev/null; } || umount -l "$RUN/merged"
  fi
  if [[ -e /sys/class/net/$VETH_H ]]; then ip link del "$VETH_H"; fi
  if [[ -e /run/netns/$NETNS ]]; then ip netns del "$NETNS"; fi
  while ip route del unreachable "$NET.0/30" metric 4242 2>/dev/null; do :; done
  local d
  for d in $(cg_dirs); do
    if [[ -d $d ]]; then find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || log "cgroup $d not empty"; fi
  done
  # nspawn refuses to clean these when /run is not a tmpfs (or when it was SIGKILLed)
  rm -rf --one-file-system "/run/systemd/nspawn/propagate/$MACHINE"
  if [[ -s $RUN/lockname ]]; then rm -f "/run/systemd/nspawn/locks/$(<"$RUN/lockname")"; fi
  rmdir /run/systemd/nspawn/propagate /run/systemd/nspawn/locks /run/systemd/nspawn 2>/dev/null || true
  if [[ -d $RUN ]]; then
    mkdir -p "$STATE/logs"
    if [[ -f $RUN/nspawn.log ]]; then cp "$RUN/nspawn.log" "$STATE/logs/$MACHINE-last.log"; fi
    rm -rf --one-file-system "$RUN"
  fi
}

down() {
  local t0 left
  t0=$(now)
  down_quiet
  left=$(findmnt -rn -o TARGET | grep -F "$RUN/" || true)
  [[ -z $left ]] || die "mounts left: $left"
  [[ ! -d $RUN ]] || die "$RUN is left"
  log "down in $(since "$t0")s"
}

status() {
  local p
  if ! p=$(nspawn_pid); then
    echo "status: stopped"
    if [[ -f $ROOTFS/.built ]]; then echo "rootfs: $ROOTFS"; else echo "rootfs: not built"; fi
    return 0
  fi
  load_env
  echo "status: running (nspawn $p, guest init $STAGING_LEADER_PID)"
  echo "systemd: $(gexec systemctl is-system-running 2>/dev/null || true)"
  require_route
  ssh_argv
  if "${SSH[@]}" true 2>/dev/null; then echo "ssh: ok"; else echo "ssh: FAIL"; fi
  cat "$RUN/env"
}

# ------------------------------------------------------------------ faults
RESET_RULE=(INPUT -p tcp --dport 22 -j REJECT --reject-with tcp-reset)

cut_cmd() {
  load_env
  case ${1:-} in
    sessions)
      # per-connection processes are "sshd: <user> [priv]" and "sshd: <user>@notty"; the listener stays
      gexec sh -c "ps -eo pid=,args= | awk '\$2 == \"sshd:\" && (\$3 == \"$DUSER\" || \$3 ~ /^$DUSER@/) { print \$1 }' | xargs -r kill -${2:-KILL}"
      ;;
    reset) ip netns exec "$NETNS" iptables -I "${RESET_RULE[@]}" ;;
    # the guest's end goes down: the machine's route stays on our veth (marked
    # linkdown) and every packet to the guest is dropped there
    link-down) ip -n "$NETNS" link set "$VETH_G" down ;;
    link-up) ip -n "$NETNS" link set "$VETH_G" up ;;
    heal)
      while ip netns exec "$NETNS" iptables -D "${RESET_RULE[@]}" 2>/dev/null; do :; done
      ip -n "$NETNS" link set "$VETH_G" up
      # neighbours marked FAILED while the link was down would answer "No route to host"
      # for a few more seconds: forget them on both ends
      ip neigh flush dev "$VETH_H" 2>/dev/null || true
      ip -n "$NETNS" neigh flush dev "$VETH_G" 2>/dev/null || true
      ;;
    *) die "cut sessions [SIG] | reset | link-down | link-up | heal" ;;
  esac
}

throttle() {
  load_env
  case ${1:-} in
    "") die "throttle RATE|off" ;;
    off) tc qdisc del dev "$VETH_H" root 2>/dev/null || true ;;
    *) tc qdisc replace dev "$VETH_H" root tbf rate "$1" burst 32kbit latency 400ms ;;
  esac
}

fill_disk() {
  load_env
  local dir=/opt/$APP filler=/opt/$APP/.staging-filler avail_kb fill_kb
  if [[ ${1:-} == clear ]]; then gexec rm -f "$filler"; gexec df -h "$dir"; return 0; fi
  [[ ${1:-} =~ ^[0-9]+$ ]] || die "fill-disk FREE_MB|clear"
  # only ever a tmpfs inside the guest, never the machine's disk
  [[ $(gexec findmnt -n -o FSTYPE "$dir" 2>/dev/null) == tmpfs ]] \
    || die "$dir is not a tmpfs; bring the guest up with STAGING_OPT_SIZE=64M"
  gexec rm -f "$filler"
  avail_kb=$(gexec df --output=avail -k "$dir" | tail -1 | tr -d ' ')
  fill_kb=$((avail_kb - $1 * 1024))
  ((fill_kb > 0)) || die "only $((avail_kb / 1024)) MiB free already"
  gexec fallocate -l "${fill_kb}K" "$filler"
  gexec df -h "$dir"
}

cmd=${1:-}
shift || true
case $cmd in
  build) build "${1:-}" ;;
  up) up ;;
  down) down ;;
  status) status ;;
  ssh) load_env; require_route; ssh_argv; exec "${SSH[@]}" "$@" ;;
  exec) (($#)) || die "exec CMD..."; gexec "$@" ;;
  cut) cut_cmd "$@" ;;
  throttle) throttle "$@" ;;
  fill-disk) fill_disk "$@" ;;
  env) load_env; cat "$RUN/env" ;;
  *) sed -n '2,/^set -euo/p' "$SELF" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
esac
