#!/usr/bin/env bash
# Build the libFuzzer target with ASan+UBSan and run it.
#   bash csrc/fuzz/run_fuzz.sh [seconds=600] [workdir=/tmp/catdog_fuzz]
#   FUZZ_TIMEOUT  seconds one input may take (default 10); on a loaded machine the largest
#                 progressive JPEGs the pixel limit allows take longer under the sanitizers
#   FUZZ_PYTHON   a Python with Pillow for make_seeds.py (default: the project's .venv)
# Seeds: the image fixtures in tests/fixtures/data and the fuzz regressions beside them, the
# JPEG (baseline, progressive, restart markers, CMYK), PNG, BMP and GIF files make_seeds.py
# writes (when FUZZ_PYTHON has Pillow; a crop of a ../shared photo among them when it is
# there), and the reproducers in ../shared/fuzz when that folder is there.
# stb's internal asserts are off, as in the library (stb asserts a Huffman invariant that
# corrupt JPEGs break; the sanitizers still catch any out-of-bounds access).
# Needs clang with libFuzzer (Debian/Ubuntu: apt-get install clang libclang-rt-14-dev).
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_TO_RUN="${1:-600}"
WORK="${2:-/tmp/catdog_fuzz}"
TIMEOUT="${FUZZ_TIMEOUT:-10}"
mkdir -p "$WORK/corpus" "$WORK/artifacts"
cp tests/fixtures/data/*.{jpg,png,bmp,gif} tests/fixtures/data/fuzz_regressions/* "$WORK/corpus/" 2>/dev/null || true
PY="${FUZZ_PYTHON:-.venv/bin/python}"
PHOTO=../shared/data/cats_and_dogs_filtered/train/cats/cat.0.jpg
if "$PY" -c 'import PIL' 2>/dev/null; then
    "$PY" csrc/fuzz/make_seeds.py "$WORK/corpus" $([ -f "$PHOTO" ] && echo --photo "$PHOTO")
else
    echo "run_fuzz.sh: no Pillow in $PY: the fixtures alone seed the run" >&2
fi
[ -d ../shared/fuzz ] && cp ../shared/fuzz/* "$WORK/corpus/"
echo "run_fuzz.sh: $(ls "$WORK/corpus" | wc -l) inputs in $WORK/corpus; $(date -u +%FT%TZ), ${SECONDS_TO_RUN} s"
clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -Icsrc \
    csrc/fuzz/fuzz_decode.c csrc/data/decode.c csrc/data/resize.c csrc/core/error.c \
    -o "$WORK/fuzz_decode"
"$WORK/fuzz_decode" -max_total_time="$SECONDS_TO_RUN" -max_len=65536 -rss_limit_mb=1024 \
    -malloc_limit_mb=256 -timeout="$TIMEOUT" -print_final_stats=1 -artifact_prefix="$WORK/artifacts/" \
    "$WORK/corpus"
