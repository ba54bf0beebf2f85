#!/usr/bin/env bash
# Starts the services the cluster tests of slaw use, on this one machine: a PostgreSQL server
# with a role and database for the tests, and a one-node Slurm cluster (munge, slurmctld,
# slurmd). Idempotent: what is installed is not installed again, what runs is not restarted.
# Runs as root (or through sudo); works without systemd (daemons are started directly).
#
# Prints, on its last lines, the variables the tests read:
#   export SLAW_TEST_POSTGRES=postgres://slaw:slaw@127.0.0.1:5432/slaw_test
#   export SLAW_TEST_SLURM=1
# so that `eval "$(scripts/start_services.sh | grep ^export)"` sets them.
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
log() { printf 'start_services: %s\n' "$*" >&2; }

PG_USER=slaw
PG_PASSWORD=slaw
PG_DB=slaw_test
PG_PORT="${SLAW_PG_PORT:-5432}"

# ---------------------------------------------------------------------------------------------
# Packages
# ---------------------------------------------------------------------------------------------
need=()
command -v pg_ctlcluster >/dev/null 2>&1 || need+=(postgresql)
command -v slurmctld >/dev/null 2>&1 || need+=(slurm-wlm)
command -v munged >/dev/null 2>&1 || need+=(munge)
if [ "${#need[@]}" -gt 0 ]; then
    log "installing ${need[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# ---------------------------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------------------------
pg_version="$(ls /usr/lib/postgresql | sort -V | tail -1)"
if ! pg_lsclusters -h 2>/dev/null | awk '{print $1" "$2}' | grep -q "^$pg_version main$"; then
    log "creating PostgreSQL $pg_version cluster main"
    as_root pg_createcluster "$pg_version" main --port "$PG_PORT" >/dev/null
fi
if ! pg_lsclusters -h | awk -v v="$pg_version" '$1 == v && $2 == "main" {print $4}' | grep -q online; then
    log "starting PostgreSQL $pg_version"
    as_root pg_ctlcluster "$pg_version" main start
fi
for _ in $(seq 1 60); do
    if as_root su postgres -c "psql -p $PG_PORT -Atqc 'SELECT 1'" >/dev/null 2>&1; then break; fi
    sleep 0.5
done
psql_admin() { as_root su postgres -c "psql -p $PG_PORT -v ON_ERROR_STOP=1 -Atq $*"; }
if [ "$(psql_admin "-c \"SELECT 1 FROM pg_roles WHERE rolname = '$PG_USER'\"")" != 1 ]; then
    log "creating role $PG_USER"
    # CREATEDB: the tests create one database per test so that they run in parallel.
    psql_admin "-c \"CREATE ROLE $PG_USER LOGIN CREATEDB PASSWORD '$PG_PASSWORD'\""
fi
# The test database starts empty on every call, so that no schema of an earlier checkout (a
# migration since renumbered or edited) is left in it.
log "creating database $PG_DB (fresh)"
psql_admin "-c \"DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)\""
psql_admin "-c \"CREATE DATABASE $PG_DB OWNER $PG_USER\""
# Many concurrent workers and parallel tests: raise the connection limit once (needs a restart).
max_conn="$(psql_admin "-c 'SHOW max_connections'")"
if [ "$max_conn" -lt 400 ]; then
    log "raising max_connections to 400"
    psql_admin "-c 'ALTER SYSTEM SET max_connections = 400'"
    as_root pg_ctlcluster "$pg_version" main restart
    for _ in $(seq 1 60); do
        if psql_admin "-c 'SELECT 1'" >/dev/null 2>&1; then break; fi
        sleep 0.5
    done
fi

# ---------------------------------------------------------------------------------------------
# munge
# ---------------------------------------------------------------------------------------------
if [ ! -s /etc/munge/munge.key ]; then
    log "creating the munge key"
    as_root mkdir -p /etc/munge
    as_root dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
fi
as_root chown munge:munge /etc/munge/munge.key
as_root chmod 400 /etc/munge/munge.key
as_root mkdir -p /run/munge /var/lib/munge /var/log/munge
as_root chown munge:munge /run/munge /var/lib/munge /var/log/munge
as_root chmod 755 /run/munge
if ! munge -n >/dev/null 2>&1; then
    log "starting munged"
    as_root su -s /bin/sh munge -c "/usr/sbin/munged"
    for _ in $(seq 1 40); do
        if munge -n >/dev/null 2>&1; then break; fi
        sleep 0.25
    done
fi
munge -n | unmunge >/dev/null

# ---------------------------------------------------------------------------------------------
# Slurm: one node, this machine
# ---------------------------------------------------------------------------------------------
node="$(hostname -s)"
cpus="$(nproc)"
mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 ))
real_mem=$(( mem_mb > 2048 ? mem_mb - 1024 : mem_mb / 2 ))
conf=/etc/slurm/slurm.conf
want="$(cat <<EOF
# Written by slaw's scripts/start_services.sh: a one-node cluster for the tests.
ClusterName=slaw
SlurmctldHost=$node(127.0.0.1)
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmdSpoolDir=/var/spool/slurmd
StateSaveLocation=/var/spool/slurmctld
SlurmUser=root
SlurmdUser=root
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
MaxArraySize=100001
MaxJobCount=100000
MinJobAge=300
KillWait=5
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=30
Waittime=0
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$real_mem State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
)"
as_root mkdir -p /etc/slurm /var/spool/slurmd /var/spool/slurmctld /var/log/slurm
changed=0
if [ ! -f "$conf" ] || [ "$(cat "$conf")" != "$want" ]; then
    log "writing $conf (node $node, $cpus CPUs, $real_mem MB)"
    printf '%s\n' "$want" | as_root tee "$conf" >/dev/null
    changed=1
fi
pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
if [ "$changed" = 1 ]; then
    for pidfile in /run/slurmctld.pid /run/slurmd.pid; do
        if pid_alive "$pidfile"; then
            as_root kill "$(cat "$pidfile")"
            for _ in $(seq 1 40); do pid_alive "$pidfile" || break; sleep 0.25; done
        fi
    done
fi
if ! pid_alive /run/slurmctld.pid; then
    log "starting slurmctld"
    as_root /usr/sbin/slurmctld
fi
if ! pid_alive /run/slurmd.pid; then
    log "starting slurmd"
    as_root /usr/sbin/slurmd
fi
state=""
for _ in $(seq 1 120); do
    state="$(sinfo -h -N -n "$node" -o '%t' 2>/dev/null || true)"
    case "$state" in
        idle | mix | alloc) break ;;
        down* | drain* | fail*)
            as_root scontrol update NodeName="$node" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    sleep 0.5
done
case "$state" in
    idle | mix | alloc) log "Slurm node $node is $state" ;;
    *)
        log "Slurm node $node did not come up (state: ${state:-none}); see /var/log/slurm/"
        tail -20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
        exit 1 ;;
esac

echo "export SLAW_TEST_POSTGRES=postgres://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB"
echo "export SLAW_TEST_SLURM=1"
