#!/usr/bin/env bash
# `serbench plot` end to end: the demo config's three seeds, then confusion matrices and
# per-class F1 bars as PNG and SVG. Checks each PNG's signature and size (also at --dpi 192),
# that each SVG parses and carries every class name, that the confusion counts equal the
# stored predictions summed over seeds, and that the PNG's colour at the centre of every
# confusion cell is the documented colour map at that cell's recall. Then a MOSI regression
# group's scatter, and the bad cases (no store, no complete run, bad --out/--format/--dpi).
. "$(dirname "$0")/lib.sh"
export SERBENCH_DEMO_DIR=$(demo_corpus)
CFG=$SB_SOURCE_ROOT/configs/demo.yaml
R=$T/results
P=$T/plots
PY=/usr/bin/python3

# Nothing stored yet: exit 1 with a message, no figures.
run_sb $T/none plot "$CFG" --results "$R" --out $P
expect_exit 1 $T/none
expect_in $T/none.err "no results store"

run_sb $T/run run "$CFG" --results "$R" --quiet
expect_exit 0 $T/run

run_sb $T/plot plot "$CFG" --results "$R" --out $P
expect_exit 0 $T/plot
expect_in $T/plot.out "wrote 4 figures for 1 group"
gid=$(sqlite3 "$R/serbench.db" "SELECT DISTINCT group_id FROM runs")
base=$P/${gid:0:12}_demo-test
for f in confusion.png confusion.svg f1.png f1.svg; do
  [ -s "${base}_$f" ] || fail "missing ${base}_$f"
  ok
  expect_in $P/index.md "$(basename "${base}_$f")"
done
expect_in $P/index.md "## fbank + linear (human labels)"
expect_in $P/index.md "3 of 3 runs complete"

# The stored predictions as "run gold pred" lines, for the checks in Python.
sqlite3 -separator ' ' "$R/serbench.db" \
  "SELECT run_id, gold, pred FROM predictions WHERE test='demo/test'" >$T/preds.txt
[ "$(wc -l <$T/preds.txt)" -gt 0 ] || fail "no stored predictions"

cat >$T/check.py <<'PY'
import json, struct, sys, zlib
import xml.etree.ElementTree as ET

def png(path):
    """(width, height, rows of (r, g, b)) of an 8-bit RGB or RGBA PNG, decoded with zlib."""
    data = open(path, 'rb').read()
    assert data[:8] == b'\x89PNG\r\n\x1a\n', f'{path}: no PNG signature'
    pos, idat, ihdr = 8, b'', None
    while pos < len(data):
        n, kind = struct.unpack('>I4s', data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b'IHDR':
            ihdr = struct.unpack('>IIBBBBB', body)
        elif kind == b'IDAT':
            idat += body
        pos += 12 + n
    w, h, depth, ctype, _, _, interlace = ihdr
    assert depth == 8 and ctype in (2, 6) and interlace == 0, f'{path}: IHDR {ihdr}'
    bpp = 3 if ctype == 2 else 4
    raw, stride, prev, rows = zlib.decompress(idat), w * bpp, bytearray(w * bpp), []
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1: line[i] = (line[i] + a) & 255
            elif f == 2: line[i] = (line[i] + b) & 255
            elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append([tuple(line[x * bpp:x * bpp + 3]) for x in range(w)])
        prev = line
    return w, h, rows

# ColorBrewer Blues, linear between nine stops (docs/cli.md, plot.h).
STOPS = ['f7fbff', 'deebf7', 'c6dbef', '9ecae1', '6baed6', '4292c6', '2171b5', '08519c', '08306b']
def cmap(t):
    if t is None:
        return (0xd9,) * 3
    x = min(max(t, 0.0), 1.0) * 8
    i = min(int(x), 7)
    f = x - i
    lo, hi = bytes.fromhex(STOPS[i]), bytes.fromhex(STOPS[i + 1])
    return tuple((1 - f) * lo[c] + f * hi[c] for c in range(3))

base, preds_path, mode = sys.argv[1], sys.argv[2], sys.argv[3]
info = json.load(open(base + '.json'))
classes = info['classes']
k = len(classes)
if mode == 'dpi192':
    w, h, _ = png(base + '_confusion.png')
    assert (w, h) == (1280, 1120), f'--dpi 192: {w}x{h}, want 1280x1120'
    sys.exit(0)

for kind in ('confusion', 'f1'):
    w, h, rows = png(f'{base}_{kind}.png')
    assert (w, h) == (640, 560), f'{kind}.png is {w}x{h}, want 640x560'
    root = ET.parse(f'{base}_{kind}.svg').getroot()
    assert root.tag.endswith('svg'), root.tag
    text = ' '.join(''.join(e.itertext()) for e in root.iter())
    for c in classes:
        assert c in text, f'{kind}.svg does not name class {c!r}'

# Confusion counts summed over seeds, from the store.
counts = [[0] * k for _ in range(k)]
runs = set()
for line in open(preds_path):
    run, g, p = line.split()
    runs.add(run)
    counts[int(g)][int(p)] += 1
assert len(runs) == 3, runs
assert info['confusion'] == counts, f"json {info['confusion']} != store {counts}"

# The colour at the centre of every cell is cmap(recall of that cell).
_, _, rows = png(base + '_confusion.png')
cells = info['png_confusion_cells']
worst = 0
for i in range(k):
    tot = sum(counts[i])
    for j in range(k):
        t = counts[i][j] / tot if tot else None
        x = int(cells['x'] + (j + 0.5) * cells['cell'])
        y = int(cells['y'] + (i + 0.5) * cells['cell'])
        got, want = rows[y][x], cmap(t)
        err = max(abs(got[c] - want[c]) for c in range(3))
        worst = max(worst, err)
        assert err <= 2, f'cell ({classes[i]}, {classes[j]}) recall {t}: pixel {got} at ({x},{y}), want {want}'
print(f'pixel test: {k}x{k} cells, max channel error {worst}')
PY

$PY $T/check.py $base $T/preds.txt default || fail "figure checks"
ok

# --dpi scales the PNG; --format svg writes only SVGs.
run_sb $T/dpi plot "$CFG" --results "$R" --out $T/p192 --dpi 192 --format png
expect_exit 0 $T/dpi
expect_in $T/dpi.out "wrote 2 figures"
$PY $T/check.py $T/p192/${gid:0:12}_demo-test $T/preds.txt dpi192 || fail "--dpi 192 size"
ok
run_sb $T/svg plot "$CFG" --results "$R" --out $T/psvg --format svg
expect_exit 0 $T/svg
[ -z "$(find $T/psvg -name '*.png')" ] || fail "--format svg wrote PNGs"
ok

# A group with a seed not run yet is plotted from its complete runs, and says so.
run_sb $T/part plot "$CFG" --results "$R" --out $T/ppart 'seeds=[1,2,3,4]'
expect_exit 0 $T/part
expect_in $T/part.out "1 group is not complete"
expect_in $T/ppart/index.md "3 of 4 runs complete"
$PY -c "import json,sys; d=json.load(open(sys.argv[1])); assert d['seeds']==[1,2,3] and d['runs']==4, d" \
  $T/ppart/${gid:0:12}_demo-test.json || fail "partial group json"
ok

# A sweep: one section per group, labelled with its sweep value.
run_sb $T/sw run "$CFG" --results "$T/rs" --quiet 'seeds=[1]' 'sweep.heads.linear.lr=[0.003,0.01]'
expect_exit 0 $T/sw
run_sb $T/swp plot "$CFG" --results "$T/rs" --out $T/psw 'seeds=[1]' 'sweep.heads.linear.lr=[0.003,0.01]'
expect_exit 0 $T/swp
expect_in $T/swp.out "wrote 8 figures for 2 groups"
expect_in $T/psw/index.md "lr=0.01"
[ "$(grep -c '^## ' $T/psw/index.md)" = 2 ] || fail "want 2 group sections in index.md"
ok

# A stored prediction outside the classes is an error naming the run and test.
cp -r "$R" $T/rbad
sqlite3 $T/rbad/serbench.db "UPDATE predictions SET pred=9 WHERE rowid=(SELECT min(rowid) FROM predictions)"
run_sb $T/corrupt plot "$CFG" --results $T/rbad --out $T/pbad
expect_exit 2 $T/corrupt
expect_in $T/corrupt.err "test 'demo/test': a stored prediction (gold"
expect_in $T/corrupt.err "pred 9) is not a class index below 4"

# Bad cases.
run_sb $T/nocomp plot "$CFG" --results "$R" --out $T/p2 'seeds=[99]'
expect_exit 1 $T/nocomp
expect_in $T/nocomp.err "no complete run"
touch $T/afile
run_sb $T/badout plot "$CFG" --results "$R" --out $T/afile
expect_exit 2 $T/badout
expect_in $T/badout.err "afile"
run_sb $T/badout2 plot "$CFG" --results "$R" --out $T/afile/sub
expect_exit 2 $T/badout2
run_sb $T/noout plot "$CFG" --results "$R"
expect_exit 2 $T/noout
expect_in $T/noout.err "--out"
run_sb $T/badfmt plot "$CFG" --results "$R" --out $P --format gif
expect_exit 2 $T/badfmt
expect_in $T/badfmt.err "png, svg or both"
run_sb $T/baddpi plot "$CFG" --results "$R" --out $P --dpi 0
expect_exit 2 $T/baddpi
expect_in $T/baddpi.err "--dpi"

# Regression: a scatter of predicted against gold values.
export MOSI_GENERATED_DIR=$(gen_once mosi make-mosi-corpus --layout mmsa)
RCFG=$SB_SOURCE_ROOT/configs/examples/mosi-regression.yaml
run_sb $T/reg run $RCFG --results $T/rr --quiet 'seeds=[1]'
expect_exit 0 $T/reg
run_sb $T/regp plot $RCFG --results $T/rr --out $T/preg 'seeds=[1]'
expect_exit 0 $T/regp
n=$(find $T/preg -name '*_scatter.png' | wc -l)
[ "$n" -ge 1 ] || fail "no scatter for the regression group"
ok
for f in $T/preg/*_scatter.svg; do
  $PY -c "import sys, xml.etree.ElementTree as E; E.parse(sys.argv[1])" "$f" || fail "$f is not XML"
  ok
done
expect_in $T/preg/index.md "predicted vs gold"
done_ok
