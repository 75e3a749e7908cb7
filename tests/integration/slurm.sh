#!/usr/bin/env bash
# serbench slurm on a real single-node Slurm (the recipe of ../shared/reference/slurm.md):
# installs slurm-wlm if missing (root; exit 77 = skipped when not root or apt fails), starts
# munged (only if `munge -n` fails), slurmctld and slurmd on localhost from a temporary
# config, and stops every daemon it started by its PID at exit, even on failure. Then:
# 1. a sweep of 2 heads x 2 seeds on the demo corpus as 2 item shards and 4 run shards, two
#    merges chained with afterok: every shard.json complete, and `serbench report` (md and
#    json) byte for byte equal to a single-process `serbench run` of the same config;
# 2. one run shard made to fail for real (its folder is a file): reported with its log path
#    by --resubmit-failed; after the fix only that shard and the runs merge are resubmitted,
#    the finished shards are not touched, and the report equals the single-process one;
# 3. bad input: no sbatch on PATH, more run shards than runs (exit 2, nothing written).
. "$(dirname "$0")/lib.sh"

if [ "$(id -u)" != 0 ]; then
  echo "skipped: starting slurmctld, slurmd and munged for the test needs root"
  exit 77
fi
export DEBIAN_FRONTEND=noninteractive
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null ||
  ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
  if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends slurm-wlm; } \
    >"$T/apt.log" 2>&1; then
    tail -n 20 "$T/apt.log"
    echo "skipped: apt-get could not install slurm-wlm (see above)"
    exit 77
  fi
fi

# ---- a private cluster: all state in $W, SLURM_CONF read by daemons, clients and jobs
W=$(mktemp -d "$T/cluster.XXXXXX")
mkdir -p "$W/state" "$W/spool"
export SLURM_CONF="$W/slurm.conf"
MUNGE_PID= CTLD_PID= SLURMD_PID=
cleanup() {
  local rc=$?
  if [ -n "$CTLD_PID" ]; then
    # Jobs first, so no serbench task outlives the test; this cluster holds only ours.
    squeue -h -o %A 2>/dev/null | sort -u | xargs -r scancel 2>/dev/null
    for _ in $(seq 50); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.2; done
  fi
  [ -n "$SLURMD_PID" ] && kill "$SLURMD_PID" 2>/dev/null
  [ -n "$CTLD_PID" ] && kill "$CTLD_PID" 2>/dev/null
  [ -n "$SLURMD_PID" ] && wait "$SLURMD_PID" 2>/dev/null
  [ -n "$CTLD_PID" ] && wait "$CTLD_PID" 2>/dev/null
  if [ -n "$MUNGE_PID" ]; then
    kill "$MUNGE_PID" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$MUNGE_PID" 2>/dev/null || break; sleep 0.2; done
  fi
  rm -rf "$T"
  exit $rc
}
trap cleanup EXIT
trap 'exit 143' TERM INT # (meson's timeout) through cleanup too

if ! munge -n >/dev/null 2>&1; then # never a second munged; never kill one we did not start
  install -d -o munge -g munge -m 0755 /run/munge
  runuser -u munge -- munged || fail "munged did not start"
  MUNGE_PID=$(cat /run/munge/munged.pid)
fi
munge -n | unmunge >/dev/null || fail "munge does not work"

NODE=$(slurmd -C | head -n1 | sed 's/^NodeName=[^ ]*/NodeName=localhost/')
cat >"$SLURM_CONF" <<EOF
ClusterName=sbtest
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
MailProg=/bin/true
MpiDefault=none
StateSaveLocation=$W/state
SlurmdSpoolDir=$W/spool
SlurmctldPidFile=$W/slurmctld.pid
SlurmdPidFile=$W/slurmd.pid
SlurmctldLogFile=$W/slurmctld.log
SlurmdLogFile=$W/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerParameters=batch_sched_delay=0,sched_interval=1
ReturnToService=2
JobCompType=jobcomp/filetxt
JobCompLoc=$W/jobcomp.txt
$NODE State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
slurmctld -D -c >"$W/slurmctld.stdout" 2>&1 </dev/null &
CTLD_PID=$!
slurmd -D -c >"$W/slurmd.stdout" 2>&1 </dev/null &
SLURMD_PID=$!
for _ in $(seq 100); do [ "$(sinfo -h -n localhost -o %t 2>/dev/null)" = idle ] && break; sleep 0.2; done
[ "$(sinfo -h -n localhost -o %t)" = idle ] || { cat "$W"/*.log >&2; fail "the node did not come up"; }
t0=$(date +%s)
echo "cluster up (slurmctld $CTLD_PID, slurmd $SLURMD_PID, munged ${MUNGE_PID:-not ours})"

# ---- the experiment: 2 heads x 2 seeds on the demo corpus, fbank features
export SERBENCH_DEMO_DIR=$(demo_corpus)
CFG=$T/sweep.yaml
cat >"$CFG" <<YAML
include: $SB_SOURCE_ROOT/configs/demo.yaml
heads:
  mlp: {plugin: mlp, hidden: [32], epochs: 30, lr: 3.0e-3, batch_size: 16, patience: 10}
sweep:
  experiment.head: [linear, mlp]
seeds: [1, 2]
slurm: {item_shards: 2, run_shards: 4, cpus_per_task: 1, time: "10:00"}
YAML

run_sb $T/one run "$CFG" --results "$T/one" --threads 1 --quiet
expect_exit 0 $T/one
for fmt in md json; do
  run_sb $T/one.$fmt report "$CFG" --results "$T/one" --format $fmt
  expect_exit 0 $T/one.$fmt
done

# wait_plan PLAN.JSON: until none of its jobs is in the queue (120 s at most)
wait_plan() {
  local ids
  ids=$(jq -r '[.jobs[] | select(.included) | .job_id] | join(",")' "$1")
  for _ in $(seq 600); do
    [ -z "$(squeue -h -j "$ids" 2>/dev/null)" ] && return 0
    sleep 0.2
  done
  squeue >&2
  fail "jobs $ids still queued after 120 s"
}
# same_report R: md and json reports of R equal the single-process ones, byte for byte
same_report() {
  for fmt in md json; do
    run_sb $T/rep report "$CFG" --results "$1" --format $fmt
    expect_exit 0 $T/rep
    cmp -s $T/one.$fmt.out $T/rep.out ||
      { diff $T/one.$fmt.out $T/rep.out >&2; fail "$1: the merged report ($fmt) differs from the single-process one"; }
    ok
  done
}
# last_plan R: the newest plan.json (stamps sort in C order: 20261205T213642Z-2 is newer)
last_plan() { echo "$1/slurm/$(LC_ALL=C ls "$1/slurm" | tail -n1)/plan.json"; }
show_logs() { for f in "$1"/slurm/*/logs/*; do echo "--- $f" >&2; cat "$f" >&2; done; }

# ---- 1. the whole chain
R=$T/res
run_sb $T/sub slurm "$CFG" --results "$R"
expect_exit 0 $T/sub
cat $T/sub.out
expect_in $T/sub.err "is not on a cluster file system"
P=$(last_plan "$R")
for j in items merge-items runs merge-runs; do
  expect_in $T/sub.out "$j "
  [ -n "$(jq -r ".jobs[\"$j\"].job_id // empty" "$P")" ] || fail "plan.json has no job id for $j"
done
ok
# cpus_per_task is both the Slurm request and every serbench call's --threads.
D=$(dirname "$P")
expect_in "$D/runs.sbatch" "#SBATCH --cpus-per-task=1"
expect_in "$D/runs.sbatch" '--shard "$i/4" --results "$shard" --base "$results" --threads 1'
expect_in "$D/items.sbatch" '--items "$i/2" --results "$shard" --threads 1'
expect_in "$D/items.sbatch" "#SBATCH --time=10:00"
# The chain, as Slurm holds it: each job depends on the one before.
runs_job=$(jq -r '.jobs.runs.job_id' "$P")
mi_job=$(jq -r '.jobs["merge-items"].job_id' "$P")
scontrol show job "$runs_job" | grep -q "Dependency=afterok:${mi_job}" ||
  { scontrol show job "$runs_job" >&2; fail "the runs array does not depend on merge-items"; }
ok
wait_plan "$P"
echo "chain finished $(($(date +%s) - t0)) s after the cluster came up"
for k in items:2 runs:4; do
  for i in $(seq ${k#*:}); do
    sj=$R/shards/${k%:*}/$i/shard.json
    [ "$(jq -r .complete "$sj" 2>/dev/null)" = true ] || { show_logs "$R"; fail "$sj is not complete"; }
    [ "$(jq -r '.kind + " " + (.index|tostring) + "/" + (.count|tostring)' "$sj")" = "${k%:*} $i/${k#*:}" ] ||
      fail "$sj: $(cat "$sj")"
  done
done
ok
[ -e "$(dirname "$P")/merge-items.done" ] && [ -e "$(dirname "$P")/merge-runs.done" ] ||
  { show_logs "$R"; fail "a merge did not finish"; }
ok
# Each log is where plan.json says, and the task says which shard it ran.
grep -q "run shard 3/4" "$(jq -r '.shards.runs[2].log' "$P")" || fail "run shard 3's log"
ok
[ "$(sqlite3 "$R/serbench.db" "SELECT count(*) FROM runs WHERE status='complete'")" = 4 ] ||
  fail "the merged store does not hold 4 complete runs"
ok
same_report "$R"
# Every shard's store is its own file; run shards read features through the link to R's.
[ "$(readlink -f "$R/shards/runs/2/features")" = "$(readlink -f "$R/features")" ] ||
  fail "run shard 2's features are not R's"
ok
run_sb $T/none slurm "$CFG" --results "$R" --resubmit-failed
expect_exit 0 $T/none
expect_in $T/none.out "nothing to resubmit"

# ---- 2. a run shard that fails: its folder is a file (root ignores permission bits)
R2=$T/res2
mkdir -p "$R2/shards/runs"
echo "not a folder" >"$R2/shards/runs/3"
run_sb $T/sub2 slurm "$CFG" --results "$R2"
expect_exit 0 $T/sub2
P2=$(last_plan "$R2")
wait_plan "$P2"
for i in 1 2 4; do
  [ "$(jq -r .complete "$R2/shards/runs/$i/shard.json")" = true ] || { show_logs "$R2"; fail "run shard $i"; }
done
ok
[ ! -e "$(dirname "$P2")/merge-runs.done" ] || fail "merge-runs ran after a failed shard"
ok
log3=$(jq -r '.shards.runs[2].log' "$P2")
grep -q "serbench: error" "$log3" || { show_logs "$R2"; fail "run shard 3's log has no error"; }
ok
# Reported with its log path (--no-submit: report and write the scripts only).
run_sb $T/rep2 slurm "$CFG" --results "$R2" --resubmit-failed --no-submit
expect_exit 0 $T/rep2
expect_in $T/rep2.err "run shard 3/4 did not complete"
expect_in $T/rep2.err "log: $log3"
expect_not_in $T/rep2.err "shard 1/4"
expect_in $T/rep2.out "--array=3"
expect_not_in $T/rep2.out "items.sbatch <=="
PN=$(last_plan "$R2")
[ "$PN" != "$P2" ] && [ "$(jq -r '.jobs.runs.job_id' "$PN")" = null ] || fail "--no-submit plan: $PN"
ok
# Fix the cause; resubmit. Finished shards must not run again.
rm "$R2/shards/runs/3"
before=$(stat -c '%n %Y %s' "$R2"/shards/*/*/shard.json "$R2"/shards/*/*/serbench.db | grep -v "runs/3/")
run_sb $T/re slurm "$CFG" --results "$R2" --resubmit-failed
expect_exit 0 $T/re
cat $T/re.out
expect_in $T/re.err "run shard 3/4 did not complete"
expect_in $T/re.err "log: $log3"
P3=$(last_plan "$R2")
[ "$P3" != "$PN" ] && [ "$(jq -r '.resubmit_of' "$P3")" = "$(basename "$(dirname "$PN")")" ] ||
  fail "resubmit_of: $(jq -r .resubmit_of "$P3")"
[ "$(jq -r '[.jobs | to_entries[] | select(.value.included) | .key] | join(" ")' "$P3")" = "runs merge-runs" ] ||
  fail "resubmitted jobs: $(jq -c .jobs "$P3")"
expect_in "$(dirname "$P3")/runs.sbatch" "#SBATCH --array=3"
ok
wait_plan "$P3"
[ "$(jq -r .complete "$R2/shards/runs/3/shard.json")" = true ] || { show_logs "$R2"; fail "run shard 3 after the fix"; }
after=$(stat -c '%n %Y %s' "$R2"/shards/*/*/shard.json "$R2"/shards/*/*/serbench.db | grep -v "runs/3/")
[ "$before" = "$after" ] || { diff <(echo "$before") <(echo "$after") >&2; fail "a finished shard was touched"; }
ok
# The old log of shard 3 stays; the new one is in the new plan's folder.
[ "$(jq -r '.shards.runs[2].log' "$P3")" != "$log3" ] && [ -s "$(jq -r '.shards.runs[2].log' "$P3")" ] ||
  fail "shard 3's new log"
[ "$(jq -r '.shards.runs[0].log' "$P3")" = "$(jq -r '.shards.runs[0].log' "$P2")" ] || fail "shard 1's log carried over"
ok
same_report "$R2"
# An item shard stopped between `label` and `encode` (its shard.json then says command label,
# complete true) did not complete: --resubmit-failed names it.
sj=$R2/shards/items/1/shard.json
cp "$sj" $T/items1.shard.json
jq '.command = "label"' $T/items1.shard.json >"$sj"
run_sb $T/rep3 slurm "$CFG" --results "$R2" --resubmit-failed --no-submit
expect_exit 0 $T/rep3
expect_in $T/rep3.err "item shard 1/"
expect_in $T/rep3.err "written by \`label\`, not by \`encode\`"
cp $T/items1.shard.json "$sj"

# ---- 3. bad input
mkdir -p $T/nosb && ln -s "$(command -v jq)" $T/nosb/jq
PATH=$T/nosb run_sb $T/nosbatch slurm "$CFG" --results "$T/r3"
expect_exit 2 $T/nosbatch
expect_in $T/nosbatch.err "sbatch not found"
[ ! -e "$T/r3" ] || fail "a failed check wrote $T/r3"
ok
run_sb $T/empty slurm "$CFG" --results "$T/r4" slurm.run_shards=5
expect_exit 2 $T/empty
expect_in $T/empty.err "run_shards is 5 but the config has 4 runs"
[ ! -e "$T/r4" ] || fail "a failed check wrote $T/r4"
ok
run_sb $T/typo slurm "$CFG" --results "$T/r4" slurm.run_shard=2
expect_exit 2 $T/typo
expect_in $T/typo.err "did you mean 'run_shards'"
expect_in $T/typo.err "<command line>:0:1: unknown key 'run_shard' in slurm:"
run_sb $T/badtime slurm "$CFG" --results "$T/r4" slurm.time=4h
expect_exit 2 $T/badtime
expect_in $T/badtime.err "slurm.time must be a time limit"
run_sb $T/badstage slurm "$CFG" --results "$T/r4" 'slurm.stages=[items, run]'
expect_exit 2 $T/badstage
expect_in $T/badstage.err "unknown stage 'run' in slurm.stages"
expect_in $T/badstage.err "did you mean 'runs'"
[ ! -e "$T/r4" ] || fail "a config error wrote $T/r4"
ok
run_sb $T/noplan slurm "$CFG" --results "$T/r5" --resubmit-failed
expect_exit 2 $T/noplan
expect_in $T/noplan.err "nothing to resubmit; run serbench slurm"
[ ! -e "$T/r5" ] || fail "--resubmit-failed without a plan wrote $T/r5"
ok
# A plan is resubmitted only for the config (run set) it was made for.
run_sb $T/other slurm "$CFG" --results "$R" --resubmit-failed 'seeds=[1,2,3]'
expect_exit 2 $T/other
expect_in $T/other.err "was made for another config"
run_sb $T/flag slurm "$CFG" --results "$R" --shard 1/2
expect_exit 2 $T/flag
expect_in $T/flag.err "serbench slurm takes CONFIG"
echo "total $(($(date +%s) - t0)) s with the cluster up"
done_ok
