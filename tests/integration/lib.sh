# tests/integration/lib.sh — helpers for the CLI end-to-end tests (sourced).
# Environment from meson: SERBENCH (the binary), SB_SOURCE_ROOT, SB_BUILD_ROOT, SB_SHARED_DATA.
set -uo pipefail
: "${SERBENCH:?run through meson test}"
T=$(mktemp -d "${TMPDIR:-/tmp}/sbtest.XXXXXX")
trap 'rm -rf "$T"' EXIT
export NO_COLOR=1
n_checks=0

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { n_checks=$((n_checks + 1)); }

# run_sb OUTPREFIX args... : run serbench, keep stdout/stderr/exit in $OUTPREFIX.{out,err,rc}
run_sb() {
  local p=$1; shift
  "$SERBENCH" "$@" >"$p.out" 2>"$p.err"
  echo $? >"$p.rc"
}

# expect_exit CODE OUTPREFIX
expect_exit() {
  local want=$1 p=$2 got
  got=$(cat "$p.rc")
  [ "$got" = "$want" ] || { echo "--- stderr:"; cat "$p.err"; echo "--- stdout:"; cat "$p.out"; fail "$p: exit $got, want $want"; } >&2
  ok
}

# expect_in FILE TEXT : fixed-string match
expect_in() {
  grep -qF -- "$2" "$1" || { echo "--- $1:"; cat "$1"; fail "'$2' not in $1"; } >&2
  ok
}

expect_not_in() {
  if grep -qF -- "$2" "$1"; then echo "--- $1:" >&2; cat "$1" >&2; fail "'$2' unexpectedly in $1"; fi
  ok
}

# The demo corpus, generated once per build tree (deterministic, so safe to share).
demo_corpus() {
  local d="$SB_BUILD_ROOT/test-data/demo"
  if [ ! -f "$d/manifest.csv" ]; then
    mkdir -p "$SB_BUILD_ROOT/test-data"
    local tmp
    tmp=$(mktemp -d "$SB_BUILD_ROOT/test-data/demo.XXXXXX")
    "$SB_SOURCE_ROOT/scripts/make-demo-corpus" "$tmp" >/dev/null 2>&1 || fail "make-demo-corpus"
    mv -T "$tmp" "$d" 2>/dev/null || rm -rf "$tmp"   # another test may have won the race
  fi
  echo "$d"
}

# gen_once NAME SCRIPT [ARGS...]: a generated corpus under the build tree, made once
# (deterministic generators, so sharing between tests and runs is safe).
gen_once() {
  local name=$1 script=$2; shift 2
  local d="$SB_BUILD_ROOT/test-data/int-$name"
  if [ ! -e "$d/.complete" ]; then
    mkdir -p "$SB_BUILD_ROOT/test-data"
    local tmp
    tmp=$(mktemp -d "$SB_BUILD_ROOT/test-data/int-$name.XXXXXX")
    "$SB_SOURCE_ROOT/scripts/$script" "$tmp" "$@" >"$tmp.log" 2>&1 || { cat "$tmp.log" >&2; fail "$script"; }
    touch "$tmp/.complete"
    mv -T "$tmp" "$d" 2>/dev/null || rm -rf "$tmp"
    rm -f "$tmp.log"
  fi
  echo "$d"
}

done_ok() { echo "ok: $n_checks checks"; exit 0; }
