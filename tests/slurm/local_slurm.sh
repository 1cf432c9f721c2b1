#!/usr/bin/env bash
# A single-node SLURM cluster for tests (root only): munged, slurmctld and slurmd on this machine.
#   local_slurm.sh install        apt-get install slurm-wlm munge (if missing)
#   local_slurm.sh start DIR      write DIR/slurm.conf, start the daemons (PIDs in DIR/*.pid), wait until idle
#   local_slurm.sh stop DIR       stop the daemons started by `start DIR`, by their PIDs
# After `start`, export SLURM_CONF=DIR/slurm.conf so sbatch/squeue (and submitit) find the cluster.
set -euo pipefail
cmd=${1:?usage: local_slurm.sh install|start DIR|stop DIR}

case "$cmd" in
install)
  if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq slurm-wlm munge >/dev/null
  fi
  ;;
start)
  dir=$(realpath -m "${2:?start needs a directory}")
  mkdir -p "$dir"/{state,spool,munge}
  host=$(hostname)
  cpus=$(nproc)
  mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2 ))
  cat > "$dir/slurm.conf" <<CONF
ClusterName=sinsemi-test
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CryptoType=crypto/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
SlurmctldPort=$(( 16817 + RANDOM % 1000 ))
SlurmdPort=$(( 17817 + RANDOM % 1000 ))
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  # munged: our own socket and pid file, so we never touch a system-wide one.
  munged --force --socket="$dir/munge/munge.socket" --pid-file="$dir/munged.pid" \
         --log-file="$dir/munged.log" --seed-file="$dir/munge/munge.seed" --key-file=/etc/munge/munge.key
  export SLURM_CONF="$dir/slurm.conf"
  slurmctld -f "$dir/slurm.conf"
  slurmd -f "$dir/slurm.conf"
  for _ in $(seq 1 60); do
    if sinfo -h -o '%T' 2>/dev/null | grep -q -E '^(idle|mixed|allocated)'; then
      echo "slurm up: $SLURM_CONF"
      exit 0
    fi
    sleep 0.5
  done
  echo "slurm did not come up; logs in $dir" >&2
  exit 1
  ;;
stop)
  dir=$(realpath -m "${2:?stop needs a directory}")
  for name in slurmd slurmctld munged; do
    if [ -f "$dir/$name.pid" ]; then
      pid=$(cat "$dir/$name.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$dir/$name.pid"
    fi
  done
  ;;
*) echo "unknown command $cmd" >&2; exit 2 ;;
esac
