#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for the Slurm executor's integration tests and
# benchmark (Debian's slurm-wlm 22.05 and munge). Needs root; idempotent, and fast when the
# cluster is already up (one `sinfo`).
#
#   bash scripts/slurm-cluster.sh start    # install (apt) if needed, configure, start, wait idle
#   bash scripts/slurm-cluster.sh status   # exit 0 when the node is idle/mixed/allocated
#   bash scripts/slurm-cluster.sh stop     # stop slurmd, slurmctld, munged
#   bash scripts/slurm-cluster.sh sshd     # also an sshd on 127.0.0.1:$SLURM_TEST_SSH_PORT
#                                          # (2222) for root with the test-only key at
#                                          # $SLURM_TEST_SSH_KEY (generated if missing)
#
# The config is minimal and cgroup-free (proctrack/linuxproc, task/none), so it also works in
# containers and sandboxes without a cgroup hierarchy: one node (this hostname, with the CPUs
# and memory `slurmd -C` reports), one partition `debug` (the default), no accounting.
# Cores and memory are consumable (512 MB per job unless asked) and a core may be shared by
# 16 jobs (OverSubscribe=FORCE:16), so many small evaluation jobs (a `docker run` client each)
# share the node, as they share a Docker host.
set -euo pipefail

CONF=/etc/slurm/slurm.conf
NODE=$(hostname -s)
LOGDIR=/var/log/slurm
SSH_PORT=${SLURM_TEST_SSH_PORT:-2222}

log() { echo "slurm-cluster: $*" >&2; }

node_state() { timeout 5 sinfo -h -n "$NODE" -o %t 2>/dev/null | head -n1 || true; }

ready() {
  case "$(node_state)" in
    idle* | mix* | alloc* | comp*) return 0 ;;
    *) return 1 ;;
  esac
}

install() {
  local want=()
  command -v slurmctld >/dev/null || want+=(slurmctld)
  command -v slurmd >/dev/null || want+=(slurmd)
  command -v sbatch >/dev/null || want+=(slurm-client)
  command -v munged >/dev/null || want+=(munge)
  [[ ${1:-} == sshd ]] && ! command -v sshd >/dev/null && want+=(openssh-server)
  ((${#want[@]})) || return 0
  log "installing ${want[*]} (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${want[@]}" >/dev/null
}

write_conf() {
  local hw cpus boards sockets cores threads mem tmp
  hw=$(slurmd -C | head -n1)
  field() { sed -n "s/.*\b$1=\([0-9]*\).*/\1/p" <<<"$hw"; }
  cpus=$(field CPUs) boards=$(field Boards) sockets=$(field SocketsPerBoard)
  cores=$(field CoresPerSocket) threads=$(field ThreadsPerCore) mem=$(field RealMemory)
  mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd "$LOGDIR"
  tmp=$(mktemp)
  cat >"$tmp" <<EOF
# Written by eval-launcher's scripts/slurm-cluster.sh: a single-node test cluster.
ClusterName=evallauncher
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerNode=512
SchedulerType=sched/backfill
ReturnToService=2
KillWait=5
MinJobAge=600
InactiveLimit=0
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=$LOGDIR/slurmctld.log
SlurmdLogFile=$LOGDIR/slurmd.log
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus Boards=$boards SocketsPerBoard=$sockets CoresPerSocket=$cores ThreadsPerCore=$threads RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:16
EOF
  if cmp -s "$tmp" "$CONF"; then
    rm -f "$tmp"
    return 1  # unchanged
  fi
  mv "$tmp" "$CONF"
  chmod 644 "$CONF"
  return 0
}

start_munge() {
  if munge -n </dev/null >/dev/null 2>&1; then return 0; fi
  if [[ ! -s /etc/munge/munge.key ]]; then
    log "writing a munge key"
    mkdir -p /etc/munge
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
  fi
  chown -R munge:munge /etc/munge && chmod 700 /etc/munge && chmod 400 /etc/munge/munge.key
  mkdir -p /run/munge /var/lib/munge /var/log/munge
  chown munge:munge /run/munge /var/lib/munge /var/log/munge
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 50); do munge -n </dev/null >/dev/null 2>&1 && return 0; sleep 0.1; done
  log "munged did not start"; return 1
}

pid_alive() { [[ -s $1 ]] && kill -0 "$(cat "$1" 2>/dev/null)" 2>/dev/null; }

stop_daemon() {
  local pidfile=$1
  if pid_alive "$pidfile"; then
    kill "$(cat "$pidfile")" || true
    for _ in $(seq 50); do pid_alive "$pidfile" || break; sleep 0.1; done
  fi
}

start() {
  if [[ -s $CONF ]] && ready; then
    write_conf >/dev/null || return 0  # up with this config: nothing to do
  fi
  install
  local changed=0
  write_conf && changed=1
  start_munge
  if ((changed)); then  # a new config: restart whatever runs on the old one
    stop_daemon /run/slurmd.pid
    stop_daemon /run/slurmctld.pid
  fi
  pid_alive /run/slurmctld.pid || slurmctld
  pid_alive /run/slurmd.pid || slurmd
  for _ in $(seq 100); do
    if ! pid_alive /run/slurmctld.pid; then
      log "slurmctld is not running: $(grep -E 'fatal|error' "$LOGDIR/slurmctld.log" | tail -n1)"
      return 1
    fi
    if ready; then
      log "node $NODE is $(node_state) (partition debug)"
      return 0
    fi
    case "$(node_state)" in
      down* | drain* | unk*) scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    sleep 0.2
  done
  log "the node did not become idle; see $LOGDIR/slurmctld.log and $LOGDIR/slurmd.log"
  sinfo >&2 || true
  return 1
}

stop() {
  stop_daemon /run/slurmd.pid
  stop_daemon /run/slurmctld.pid
  if [[ -s /run/munge/munged.pid ]]; then stop_daemon /run/munge/munged.pid; fi
}

sshd_start() {
  install sshd
  local key=${SLURM_TEST_SSH_KEY:?set SLURM_TEST_SSH_KEY to the test key path (made if missing)}
  [[ -s $key ]] || ssh-keygen -q -t ed25519 -N '' -C eval-launcher-test -f "$key"
  local dir=/run/eval-launcher-sshd pidfile=/run/eval-launcher-sshd/sshd.pid
  mkdir -p "$dir" /run/sshd
  chmod 700 "$dir"
  [[ -s $dir/host_ed25519 ]] || ssh-keygen -q -t ed25519 -N '' -f "$dir/host_ed25519"
  cp "$key.pub" "$dir/authorized_keys"  # the test's key only; root's ~/.ssh is not touched
  chmod 600 "$dir/authorized_keys"
  cat >"$dir/sshd_config" <<EOF
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $dir/host_ed25519
PidFile $pidfile
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
AuthorizedKeysFile $dir/authorized_keys
EOF
  pid_alive "$pidfile" || /usr/sbin/sshd -f "$dir/sshd_config"
  for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$SSH_PORT") 2>/dev/null && return 0
    sleep 0.1
  done
  log "sshd did not start on 127.0.0.1:$SSH_PORT"; return 1
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) ready ;;
  sshd) start && sshd_start ;;
  *) echo "usage: $0 start|stop|status|sshd" >&2; exit 2 ;;
esac
