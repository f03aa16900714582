#!/usr/bin/env bash
# tests/mpi/mpi_faults.sh ROLES_PROGRAM: backend::mpi's faults, each bounded in time.
#  1. A worker rank that aborts inside a task ends the whole job (Open MPI's rule) within the
#     time limit, with cojob's line naming the rank and the signal; no process of the job stays.
#  2. backend::mpi in a program started without a launcher is refused with a clear error.
set -u
prog=$1
fail() { echo "FAIL: $*"; exit 1; }

err=$(mktemp)
trap 'rm -f "$err"' EXIT
start=$(date +%s)
timeout 60 mpirun -n 3 "$prog" crash >/dev/null 2>"$err"
rc=$?
elapsed=$(( $(date +%s) - start ))
cat "$err"
[ "$rc" -ne 0 ] || fail "the job whose rank aborted exited with 0"
[ "$rc" -ne 124 ] || fail "the job whose rank aborted hung (killed by timeout after 60 s)"
grep -q "cojob: MPI rank [12] (pid [0-9]* on .*) was killed by signal 6 (SIGABRT) while running task" "$err" ||
    fail "no line from cojob naming the rank that died"
# No process of the job is left (read from /proc: procps may not be installed).
left_of_job() {
    local f
    for f in /proc/[0-9]*/cmdline; do
        { tr '\0' ' ' <"$f"; } 2>/dev/null | grep -q "^$prog crash" && echo "${f%/cmdline}"
    done
    return 0
}
sleep 0.5
left=$(left_of_job)
[ -z "$left" ] || fail "processes of the job are left: $left"
echo "crash: mpirun exited with $rc after ${elapsed} s"

out=$(env -u OMPI_COMM_WORLD_SIZE -u PMIX_RANK -u PMI_RANK -u PMI_SIZE timeout 30 "$prog" unlaunched) ||
    fail "unlaunched: $out"
echo "$out"
grep -q "refused: .*backend=mpi needs the program started by an MPI launcher" <<<"$out" || fail "unlaunched: unclear error"
echo "ok"
