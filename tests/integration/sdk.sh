#!/usr/bin/env bash
# The SDK: install serbench into a fresh prefix, build the template plugin out of tree with
# `pkg-config serbench` (meson and a bare cc), see the installed serbench load it, and run
# the demo with it as the head. Also: the installed binary finds the installed plugins.
. "$(dirname "$0")/lib.sh"
export SERBENCH_DEMO_DIR=$(demo_corpus)
P=$T/prefix
# The installed tree must stand alone: not the test build's libraries (which may be
# sanitizer builds) from meson test's LD_LIBRARY_PATH.
unset LD_LIBRARY_PATH
meson setup $T/build "$SB_SOURCE_ROOT" --prefix=$P -Dtests=false -Dbuildtype=release \
  >$T/setup.log 2>&1 || { cat $T/setup.log; fail "meson setup"; }
ninja -C $T/build install >$T/install.log 2>&1 || { tail -30 $T/install.log; fail "install"; }
ok
SB=$P/bin/serbench
[ -x $SB ] || fail "no installed serbench"
PC=$(dirname "$(find $P -name serbench.pc)")
export PKG_CONFIG_PATH=$PC
pkg-config --exists serbench || fail "pkg-config serbench"
[ -f "$(pkg-config --variable=includedir serbench)/serbench/serbench.h" ] || fail "headers"
ok

# The installed binary uses the install folder (not this source or build tree).
"$SB" plugins >$T/list.out 2>$T/list.err || { cat $T/list.err; fail "plugins"; }
for p in manifest fbank human linear; do expect_in $T/list.out "  $p "; done
expect_in $T/list.out "$P/"
expect_not_in $T/list.out "$SB_BUILD_ROOT"

# Build the template with meson, against the installed SDK only.
meson setup $T/tb "$SB_SOURCE_ROOT/docs/plugin-template" --prefix=$P >$T/tb.log 2>&1 || { cat $T/tb.log; fail "template setup"; }
ninja -C $T/tb >>$T/tb.log 2>&1 || { cat $T/tb.log; fail "template build"; }
[ -f $T/tb/centroid.so ] || fail "no centroid.so"
# Only the entry point is exported.
syms=$(nm -D --defined-only $T/tb/centroid.so | awk '$2 ~ /[TD]/ {print $3}')
[ "$syms" = "serbench_plugin_v1" ] || fail "exports: $syms"
ok
# And with a bare compiler.
mkdir -p $T/cc
cc -std=c11 -Wall -Wextra -Werror -fPIC -shared -fvisibility=hidden $(pkg-config --cflags serbench) \
  "$SB_SOURCE_ROOT/docs/plugin-template/centroid.c" -o $T/cc/centroid.so $(pkg-config --libs serbench) -lm \
  || fail "cc build"
ok

SERBENCH_PLUGIN_PATH=$T/tb "$SB" plugins centroid >$T/help.out 2>&1 || { cat $T/help.out; fail "plugins centroid"; }
expect_in $T/help.out "centroid 1.0.0 (head plugin)"
expect_in $T/help.out "distance"
expect_in $T/help.out "euclidean|cosine"
expect_in $T/help.out "SERBENCH_PLUGIN_PATH"

# Run the demo with the template as head; far above chance.
SERBENCH_PLUGIN_PATH=$T/cc "$SB" run "$SB_SOURCE_ROOT/configs/demo.yaml" experiment.head=centroid \
  --results $T/r >$T/run.out 2>$T/run.err || { cat $T/run.err; fail "run with centroid"; }
expect_in $T/run.out "| fbank + centroid (human labels) |"
wa=$(sqlite3 $T/r/serbench.db "SELECT avg(value) FROM metrics WHERE metric='wa'")
awk -v w="$wa" 'BEGIN { exit !(w > 0.45) }' || fail "centroid accuracy $wa not above chance"
ok
# Options are validated for third-party plugins too.
SERBENCH_PLUGIN_PATH=$T/cc "$SB" validate "$SB_SOURCE_ROOT/configs/demo.yaml" experiment.head=centroid \
  heads.centroid.distance=manhattan >$T/v.out 2>$T/v.err
[ $? = 2 ] || fail "bad enum accepted"
expect_in $T/v.err "allowed: euclidean|cosine"
done_ok
