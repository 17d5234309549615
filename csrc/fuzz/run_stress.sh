#!/usr/bin/env bash
# The loader and dataset under ThreadSanitizer (default) or SAN=address, on the fixture images
# (plus bad files, so the skip path runs). Built without OpenMP (libgomp is not instrumented):
# the dataset load is serial here; the loader threads are pthreads.  bash csrc/fuzz/run_stress.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
SAN="${SAN:-thread}"
OUT="${TMPDIR:-/tmp}/catdog_stress"
mkdir -p "$OUT"
printf 'not an image' > "$OUT/bad.jpg"
head -c 300 tests/fixtures/data/baseline.jpg > "$OUT/truncated.jpg"
${CC:-clang} -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize="$SAN" -Wno-unknown-pragmas -Icsrc \
    csrc/fuzz/stress_loader.c csrc/data/*.c csrc/core/error.c -lm -lpthread -o "$OUT/stress_loader"
"$OUT/stress_loader" tests/fixtures/data/*.jpg tests/fixtures/data/rgb16.png "$OUT/bad.jpg" "$OUT/truncated.jpg"
