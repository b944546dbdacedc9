#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for the test suite and for trying the cluster path
# (`snakemake --workflow-profile profiles/slurm ...`, see workflow/README.md) without a real cluster.
#
#   scripts/local-slurm.sh start     # munged + slurmctld + slurmd, all state in $LOCAL_SLURM_DIR
#   eval "$(scripts/local-slurm.sh env)"   # this shell's sbatch/squeue/scancel/srun talk to that cluster
#   scripts/local-slurm.sh status    # exit 0 when all three daemons run, 1 otherwise
#   scripts/local-slurm.sh stop      # stops exactly the daemons that `start` recorded
#
# Everything lives in one folder that this script owns (LOCAL_SLURM_DIR, default .local-slurm/ in the current
# directory): configuration, munge key and socket, spool and state, logs, pid files. Nothing under /etc or /run is
# read or written, the ports are free ones picked at start, and `stop` only signals the PIDs recorded in that
# folder after checking that each one is still our daemon, so two clusters (or a system SLURM) can coexist.
# `start` and `stop` are idempotent. Needs root (slurmd starts jobs as their user) and Debian's packages:
#   sudo apt-get install -y slurm-wlm munge
# The cluster: one node `localnode` with this machine's CPUs and memory, partition `local`, no accounting daemon
# (so `sacct` does not work: the profile asks the executor plugin to poll `squeue`), no GPUs.
# Client commands find the cluster through SLURM_CONF, and through wrappers in $LOCAL_SLURM_DIR/bin that set it:
# inside a job, snakemake-executor-plugin-slurm-jobstep starts `srun` with every SLURM_* variable removed, so
# SLURM_CONF alone would not reach it (a real cluster's clients read /etc/slurm/slurm.conf instead).
set -euo pipefail

DIR="$(realpath -m "${LOCAL_SLURM_DIR:-.local-slurm}")"
CONF="$DIR/slurm.conf"
SOCKET="$DIR/munge/munge.socket"
NODE=localnode
DAEMONS=(munged slurmctld slurmd)
CLIENTS=(sbatch srun salloc squeue scancel scontrol sinfo sacct)
NEEDED=(munged mungekey slurmctld slurmd "${CLIENTS[@]}")

say() { echo "local-slurm: $*" >&2; }

# The installed program, never our own wrapper of it (PATH may hold $DIR/bin after `eval "$(... env)"`).
real_tool() {
    local folder
    local IFS=:
    for folder in $PATH /usr/sbin /usr/bin; do
        if [ "$folder" != "$DIR/bin" ] && [ -x "$folder/$1" ]; then
            echo "$folder/$1"
            return 0
        fi
    done
    return 1
}

check_installed() {
    local missing=()
    for tool in "${NEEDED[@]}"; do
        real_tool "$tool" >/dev/null || missing+=("$tool")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        say "not installed: ${missing[*]}; install with: sudo apt-get install -y slurm-wlm munge"
        exit 3
    fi
    if [ "$(id -u)" -ne 0 ]; then
        say "the daemons must run as root (slurmd starts each job as its user): run with sudo"
        exit 3
    fi
}

pid_file() { echo "$DIR/run/$1.pid"; }

# The recorded PID of a daemon, printed only while that process is still our daemon (its command line names this
# folder): a PID reused by an unrelated process after a crash is never reported, so never signalled.
live_pid() {
    local file pid cmdline
    file="$(pid_file "$1")"
    [ -s "$file" ] || return 1
    pid="$(tr -dc 0-9 <"$file")"
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline")"
    case "$cmdline" in
        *"$1 "*"$DIR/"*) echo "$pid" ;;
        *) return 1 ;;
    esac
}

free_port() {
    local port
    for port in $(seq "$1" $(($1 + 200))); do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    say "no free port in $1-$(($1 + 200))"
    exit 1
}

write_config() {
    local cpus memory user
    cpus="$(nproc)"
    # what slurmd itself detects, so the node is never marked invalid; 90% of it, leaving room for the OS
    memory="$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' | head -1)"
    memory=$((memory * 9 / 10))
    user="$(id -un)"
    mkdir -p "$DIR"/{munge,ctld,spool,log,run}
    chmod 755 "$DIR/munge"  # clients of every user reach the socket; the key inside stays 600
    : >"$DIR/plugstack.conf"
    cat >"$CONF" <<EOF
# Written by scripts/local-slurm.sh: a one-node cluster whose state lives in $DIR.
ClusterName=mdxnet-local
SlurmctldHost=$(hostname -s)(127.0.0.1)
SlurmctldPort=$(free_port 16817)
SlurmdPort=$(free_port 17817)
SlurmUser=$user
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCKET
StateSaveLocation=$DIR/ctld
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$(pid_file slurmctld)
SlurmdPidFile=$(pid_file slurmd)
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
PlugStackConfig=$DIR/plugstack.conf
# No cgroups (containers, CI runners): track processes by parent PID, no CPU binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
# Cores are scheduled, memory is only checked against the node's (a job asking for more is refused).
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# Finished jobs stay visible to squeue for 5 minutes: snakemake-executor-plugin-slurm polls squeue (there is no
# accounting for sacct) and only does so when MinJobAge is at least 3 x its first status-check delay.
MinJobAge=300
# scancel: SIGTERM, then SIGKILL 5 s later
KillWait=5
ReturnToService=2
SlurmdParameters=config_overrides
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$(hostname -s) CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=local Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
    mkdir -p "$DIR/bin"
    for tool in "${CLIENTS[@]}"; do
        printf '#!/bin/sh\nSLURM_CONF=%q exec %q "$@"\n' "$CONF" "$(real_tool "$tool")" >"$DIR/bin/$tool"
        chmod 755 "$DIR/bin/$tool"
    done
    if [ ! -s "$DIR/munge/munge.key" ]; then
        mungekey --create --keyfile="$DIR/munge/munge.key" 2>/dev/null \
            || dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
        chmod 600 "$DIR/munge/munge.key"
    fi
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...: polls COMMAND until it succeeds
    local deadline=$((SECONDS + $1)) what="$2"
    shift 2
    until "$@" >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            say "$what did not come up; logs in $DIR/log/"
            return 1
        fi
        sleep 0.2
    done
}

start_daemons() {
    # munged's paths all point into our folder (--force: it would refuse a world-writable parent such as /tmp)
    live_pid munged >/dev/null || /usr/sbin/munged --force --socket="$SOCKET" --key-file="$DIR/munge/munge.key" \
        --pid-file="$(pid_file munged)" --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/munged.seed"
    wait_for 10 munged live_pid munged
    live_pid slurmctld >/dev/null || /usr/sbin/slurmctld -f "$CONF" -i
    wait_for 30 slurmctld scontrol ping
    live_pid slurmd >/dev/null || /usr/sbin/slurmd -f "$CONF" -N "$NODE"
    wait_for 30 slurmd live_pid slurmd
    # the node registers with slurmctld a moment after slurmd starts
    wait_for 60 "node $NODE" node_ready
}

no_jobs() { [ -z "$(squeue -h -o %i)" ]; }

node_ready() { sinfo -h -n "$NODE" -o %t | grep -Eq '^(idle|mix|alloc)'; }

all_running() {
    local daemon
    for daemon in "${DAEMONS[@]}"; do
        live_pid "$daemon" >/dev/null || return 1
    done
}

cmd_start() {
    check_installed
    export SLURM_CONF="$CONF"
    if all_running; then
        say "already running ($DIR)"
        return 0
    fi
    cmd_stop 2>/dev/null  # a half-started cluster: begin again from nothing
    write_config
    start_daemons || { cmd_stop; exit 1; }
    say "running: node $NODE, $(sinfo -h -o '%c CPUs, %m MB' | head -1); $(cmd_env)"
}

cmd_stop() {
    local daemon pid stopped=0
    if live_pid slurmctld >/dev/null && live_pid slurmd >/dev/null; then
        # jobs first: slurmd ends them (SIGTERM, then SIGKILL after KillWait), which it cannot once it is gone
        export SLURM_CONF="$CONF"
        scancel --partition=local 2>/dev/null || true
        wait_for 20 "the end of the running jobs" no_jobs || true
    fi
    for daemon in slurmd slurmctld munged; do  # reverse order of start
        if pid="$(live_pid "$daemon")"; then
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 50); do
                [ -d "/proc/$pid" ] || break
                sleep 0.1
            done
            if [ -d "/proc/$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
            stopped=$((stopped + 1))
        fi
        rm -f "$(pid_file "$daemon")"
    done
    say "stopped $stopped daemon(s) ($DIR)"
}

cmd_status() {
    local daemon pid code=0
    for daemon in "${DAEMONS[@]}"; do
        if pid="$(live_pid "$daemon")"; then
            echo "$daemon: running (pid $pid)"
        else
            echo "$daemon: stopped"
            code=1
        fi
    done
    if [ "$code" -eq 0 ]; then
        SLURM_CONF="$CONF" sinfo -N -o '%N %t %c %m' || code=1
    fi
    return "$code"
}

cmd_env() {
    printf 'export SLURM_CONF=%q PATH=%q:"$PATH"\n' "$CONF" "$DIR/bin"
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    env) cmd_env ;;
    *)
        echo "usage: $0 start|stop|status|env   (state in \$LOCAL_SLURM_DIR, default .local-slurm/)" >&2
        exit 2
        ;;
esac
