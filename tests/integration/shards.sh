#!/usr/bin/env bash
# Item shards and shard stores on the demo corpus: `label`/`encode --items I/3` into three
# folders cover every utterance exactly once, each in the shard XXH3-64(id) mod 3 + 1 (checked
# with libxxhash from Python), and their union equals an unsharded extraction (same keys, the
# same label rows, bitwise the same feature tensors); item shards write no stage marks, and an
# unsharded command over their rows computes nothing and marks the stages; a run shard started
# with --base finds labels and features in its copy of the base store, computes neither, and
# writes only its own db; shard.json; bad input (run --items, --items 0/3, a bad --base).
. "$(dirname "$0")/lib.sh"
export SERBENCH_DEMO_DIR=$(demo_corpus)
CFG=$SB_SOURCE_ROOT/configs/demo.yaml
PY=/usr/bin/python3
q() { sqlite3 "$1/serbench.db" "$2"; }

# 1. The reference: unsharded label + encode.
run_sb $T/fl label "$CFG" --results $T/full
expect_exit 0 $T/fl
run_sb $T/fe encode "$CFG" --results $T/full
expect_exit 0 $T/fe
[ "$(q $T/full 'SELECT count(*) FROM features')" = 240 ] || fail "unsharded: 240 feature rows"
[ "$(q $T/full 'SELECT count(*) FROM labels')" = 240 ] || fail "unsharded: 240 label rows"
[ ! -e $T/full/shard.json ] || fail "an unsharded command wrote shard.json"
ok

# 2. Three item shards, each in its own folder.
for i in 1 2 3; do
  run_sb $T/l$i label "$CFG" --items $i/3 --results $T/items/$i
  expect_exit 0 $T/l$i
  expect_in $T/l$i.err "(items $i/3)"
  run_sb $T/e$i encode "$CFG" --items $i/3 --results $T/items/$i
  expect_exit 0 $T/e$i
done
sum_f=0 sum_l=0
for i in 1 2 3; do
  nf=$(q $T/items/$i 'SELECT count(*) FROM features')
  nl=$(q $T/items/$i 'SELECT count(*) FROM labels')
  echo "item shard $i/3: $nf feature rows, $nl label rows"
  [ "$nf" -gt 40 ] && [ "$nf" -lt 120 ] || fail "shard $i has $nf of 240 items (expected about 80)"
  [ "$nf" = "$nl" ] || fail "shard $i: $nf feature rows but $nl label rows"
  [ "$(q $T/items/$i 'SELECT count(*) FROM stages')" = 0 ] || fail "shard $i wrote stage marks"
  sum_f=$((sum_f + nf)) sum_l=$((sum_l + nl))
done
[ $sum_f = 240 ] && [ $sum_l = 240 ] || fail "shards hold $sum_f features and $sum_l labels, want 240 each"
ok

# Exactly once, and the union equals the unsharded store (ATTACH the four databases).
cmp_sql="ATTACH '$T/items/1/serbench.db' AS s1; ATTACH '$T/items/2/serbench.db' AS s2;
ATTACH '$T/items/3/serbench.db' AS s3;
CREATE TEMP VIEW uf AS SELECT enc_key, item_key FROM s1.features UNION ALL
  SELECT enc_key, item_key FROM s2.features UNION ALL SELECT enc_key, item_key FROM s3.features;
CREATE TEMP VIEW ul AS SELECT * FROM s1.labels UNION ALL SELECT * FROM s2.labels
  UNION ALL SELECT * FROM s3.labels;"
dups=$(sqlite3 $T/full/serbench.db "$cmp_sql SELECT count(*) FROM (SELECT 1 FROM uf GROUP BY enc_key, item_key HAVING count(*) > 1);")
[ "$dups" = 0 ] || fail "$dups feature items are in more than one shard"
ok
diff_f=$(sqlite3 $T/full/serbench.db "$cmp_sql SELECT count(*) FROM (SELECT enc_key, item_key FROM main.features EXCEPT SELECT * FROM uf) ;
  SELECT count(*) FROM (SELECT * FROM uf EXCEPT SELECT enc_key, item_key FROM main.features);")
[ "$diff_f" = "$(printf '0\n0')" ] || fail "feature keys of the shards differ from the unsharded store: $diff_f"
ok
diff_l=$(sqlite3 $T/full/serbench.db "$cmp_sql SELECT count(*) FROM (SELECT * FROM main.labels EXCEPT SELECT * FROM ul);
  SELECT count(*) FROM (SELECT * FROM ul EXCEPT SELECT * FROM main.labels);
  SELECT count(*) FROM (SELECT utt_id FROM ul GROUP BY stage_key, utt_id HAVING count(*) > 1);")
[ "$diff_l" = "$(printf '0\n0\n0')" ] || fail "label rows of the shards differ from the unsharded store: $diff_l"
ok

# The feature tensors themselves, bitwise, and each utterance in its documented shard.
$PY - "$T" "$SERBENCH_DEMO_DIR/manifest.csv" <<'PY' || fail "feature tensors or shard assignment"
import csv, ctypes, ctypes.util, json, sqlite3, struct, sys
T, manifest = sys.argv[1], sys.argv[2]

def tensors(root):
    """(enc_key, item_key) -> raw bytes of the stored pooled tensor."""
    db = sqlite3.connect(f"{root}/serbench.db")
    out, files = {}, {}
    for enc, item, path, name in db.execute("SELECT enc_key, item_key, file, tensor FROM features"):
        if path not in files:
            raw = open(f"{root}/{path}", "rb").read()
            (n,) = struct.unpack("<Q", raw[:8])
            files[path] = (json.loads(raw[8:8 + n]), raw[8 + n:])
        hdr, data = files[path]
        a, b = hdr[name]["data_offsets"]
        out[(enc, item)] = data[a:b]
    return out

full = tensors(f"{T}/full")
union = {}
for i in (1, 2, 3):
    union.update(tensors(f"{T}/items/{i}"))
assert len(full) == 240 and full.keys() == union.keys(), "keys differ"
bad = [k for k in full if full[k] != union[k]]
assert not bad, f"{len(bad)} tensors differ, e.g. {bad[0]}"

lib = ctypes.CDLL(ctypes.util.find_library("xxhash"))
lib.XXH3_64bits.restype = ctypes.c_uint64
lib.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
ids = [r["id"] for r in csv.DictReader(open(manifest))]
want = {u: lib.XXH3_64bits(u.encode(), len(u.encode())) % 3 + 1 for u in ids}
for i in (1, 2, 3):
    db = sqlite3.connect(f"{T}/items/{i}/serbench.db")
    got = {u for (u,) in db.execute("SELECT utt_id FROM labels")}
    exp = {u for u in ids if want[u] == i}
    assert got == exp, f"shard {i}: {len(got ^ exp)} utterances not where XXH3-64(id) mod 3 + 1 puts them"
print(f"240 tensors bitwise equal; shard sizes {[sum(1 for u in ids if want[u] == i) for i in (1, 2, 3)]}")
PY
ok

# 3. shard.json of an item shard.
cid=$("$SERBENCH" validate "$CFG" --json | jq -r .config_id)
[ ${#cid} = 32 ] || fail "validate --json has no config_id"
sj=$T/items/2/shard.json
[ "$(jq -r .config_id $sj)" = "$cid" ] || fail "shard.json config_id differs from validate's"
[ "$(jq -r .config $sj)" = "$(realpath "$CFG")" ] || fail "shard.json config is not the absolute path"
[ "$(jq -c '[.kind, .index, .count, .complete, .command, .schema]' $sj)" = '["items",2,3,true,"encode",2]' ] ||
  fail "shard.json fields: $(cat $sj)"
[ "$(jq -r .serbench $sj)" = "$("$SERBENCH" version | cut -d' ' -f2)" ] || fail "shard.json serbench version"
ok
# A sweep of more runs (another config id) and --shard's config id do not depend on the shard.
cid5=$("$SERBENCH" validate "$CFG" --json 'seeds=[1,2,3,4,5]' | jq -r .config_id)
[ "$cid5" != "$cid" ] || fail "config_id does not change with the run set"
ok

# A failing item shard leaves "complete": false (written before the work starts).
mkdir -p $T/bad
sed 's|^\(spk01_002\),wav/|\1,missing/|' "$SERBENCH_DEMO_DIR/manifest.csv" >$T/bad/manifest.csv
ln -s "$SERBENCH_DEMO_DIR/wav" $T/bad/wav
for i in 1 2 3; do
  SERBENCH_DEMO_DIR=$T/bad run_sb $T/bad$i encode "$CFG" --items $i/3 --results $T/badres/$i
done
nbad=0
for i in 1 2 3; do
  if [ "$(cat $T/bad$i.rc)" != 0 ]; then
    nbad=$((nbad + 1))
    expect_in $T/bad$i.err "spk01_002"
    [ "$(jq .complete $T/badres/$i/shard.json)" = false ] || fail "failed shard $i: shard.json complete is not false"
  else
    [ "$(jq .complete $T/badres/$i/shard.json)" = true ] || fail "shard $i: complete"
  fi
done
[ $nbad = 1 ] || fail "the missing audio file failed $nbad shards, want exactly its own"
ok

# 4. Item shards sharing one store, then the unsharded stages: nothing computed, stages marked.
for i in 1 2 3; do
  run_sb $T/sl$i label "$CFG" --items $i/3 --results $T/shared --quiet
  run_sb $T/se$i encode "$CFG" --items $i/3 --results $T/shared --quiet
  expect_exit 0 $T/sl$i
  expect_exit 0 $T/se$i
done
[ "$(q $T/shared 'SELECT count(*) FROM stages')" = 0 ] || fail "item shards marked stages"
run_sb $T/ml label "$CFG" --results $T/shared --verbose
run_sb $T/me encode "$CFG" --results $T/shared --verbose
expect_exit 0 $T/ml
expect_exit 0 $T/me
expect_not_in $T/ml.err "labelled"
expect_in $T/ml.err "complete in store (240 labels, 0 invalid)"
expect_not_in $T/me.err "to compute"
[ "$(q $T/shared "SELECT count(*) FROM stages WHERE kind='labels' AND status='complete'")" = 3 ] ||
  fail "the unsharded label command did not mark the 3 splits complete"
ok

# 5. A run shard started from the base store: labels and features found, nothing computed.
run_sb $T/r1 run "$CFG" --shard 1/2 --results $T/runs/1 --base $T/full --verbose
expect_exit 0 $T/r1
expect_in $T/r1.err "a new store, copied from $T/full/serbench.db"
expect_not_in $T/r1.err "to compute"
expect_not_in $T/r1.err "labelled"
expect_in $T/r1.err "complete in store (240 labels, 0 invalid)"
[ -L $T/runs/1/features ] && [ "$(realpath $T/runs/1/features)" = "$(realpath $T/full/features)" ] ||
  fail "runs/1/features is not a link to the base's features"
[ "$(q $T/runs/1 "SELECT count(*) FROM runs WHERE status='complete'")" = 2 ] || fail "shard 1/2 of 3 runs: 2 runs"
[ "$(q $T/full 'SELECT count(*) FROM runs')" = 0 ] || fail "the run shard wrote into the base store"
[ "$(q $T/runs/1 'SELECT count(*) FROM features')" = 240 ] || fail "the copy lost feature rows"
[ "$(jq -c '[.kind, .index, .count, .complete, .command]' $T/runs/1/shard.json)" = '["runs",1,2,true,"run"]' ] ||
  fail "run shard.json: $(cat $T/runs/1/shard.json)"
[ "$(jq -r .config_id $T/runs/1/shard.json)" = "$cid" ] || fail "run shard config_id differs from the item shards'"
ok
# A rerun ignores --base (the shard has its own db); the other shard gets the third run.
run_sb $T/r1b run "$CFG" --shard 1/2 --results $T/runs/1 --base $T/nonexistent
expect_exit 0 $T/r1b
run_sb $T/r2 run "$CFG" --shard 2/2 --results $T/runs/2 --base $T/full --quiet
expect_exit 0 $T/r2
[ "$(q $T/runs/2 "SELECT count(*) FROM runs WHERE status='complete'")" = 1 ] || fail "shard 2/2: 1 run"
ok
# Its metrics equal those of an unsharded run.
run_sb $T/ru run "$CFG" --results $T/full2 --quiet
expect_exit 0 $T/ru
m() { sqlite3 "$1/serbench.db" "SELECT run_id||' '||metric||' '||printf('%.17g', value) FROM metrics ORDER BY 1"; }
[ "$( (m $T/runs/1; m $T/runs/2) | sort)" = "$(m $T/full2 | sort)" ] || fail "shard metrics differ from an unsharded run"
ok

# 6. Bad input.
run_sb $T/x1 run "$CFG" --items 1/3 --results $T/x
expect_exit 2 $T/x1
expect_in $T/x1.err "--items shards the label and feature stages; runs are sharded with --shard"
run_sb $T/x2 encode "$CFG" --items 0/3 --results $T/x
expect_exit 2 $T/x2
expect_in $T/x2.err "--items expects I/N with 1 <= I <= N, got '0/3'"
run_sb $T/x3 encode "$CFG" --items 4/3 --results $T/x
expect_exit 2 $T/x3
run_sb $T/x4 label "$CFG" --items 1/3 --shard 1/2 --results $T/x
expect_exit 2 $T/x4
expect_in $T/x4.err "--items and --shard do not combine"
run_sb $T/x5 run "$CFG" --shard 1/2 --results $T/x6 --base $T/nonexistent
expect_exit 2 $T/x5
expect_in $T/x5.err "$T/nonexistent: --base: no serbench.db in this folder"
mkdir -p $T/x7/features/abc && touch $T/x7/features/abc/f
run_sb $T/x7 run "$CFG" --shard 1/2 --results $T/x7 --base $T/full
expect_exit 2 $T/x7
expect_in $T/x7.err "already has a features folder"
[ ! -e $T/x7/serbench.db ] || fail "a refused --base left a database"
ok
done_ok
