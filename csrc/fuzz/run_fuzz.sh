#!/usr/bin/env bash
# Build the libFuzzer target with ASan+UBSan and run it.
#   bash csrc/fuzz/run_fuzz.sh [seconds=600] [workdir=/tmp/catdog_fuzz]
#   FUZZ_TIMEOUT  seconds one input may take (default 10); on a loaded machine the largest
#                 progressive JPEGs the pixel limit allows take longer under the sanitizers
# Seeds: the image fixtures in tests/fixtures/data (JPEG, PNG, BMP, GIF).
# stb's internal asserts are off, as in the library (stb 2.27 asserts a Huffman invariant
# that corrupt JPEGs break; the sanitizers still catch any out-of-bounds access).
# Needs clang with libFuzzer (Debian/Ubuntu: apt-get install clang libclang-rt-14-dev).
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_TO_RUN="${1:-600}"
WORK="${2:-/tmp/catdog_fuzz}"
TIMEOUT="${FUZZ_TIMEOUT:-10}"
mkdir -p "$WORK/corpus" "$WORK/artifacts"
cp tests/fixtures/data/*.{jpg,png,bmp,gif} "$WORK/corpus/" 2>/dev/null || true
clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -Icsrc \
    csrc/fuzz/fuzz_decode.c csrc/data/decode.c csrc/data/resize.c csrc/core/error.c \
    -o "$WORK/fuzz_decode"
"$WORK/fuzz_decode" -max_total_time="$SECONDS_TO_RUN" -max_len=65536 -rss_limit_mb=1024 \
    -malloc_limit_mb=256 -timeout="$TIMEOUT" -print_final_stats=1 -artifact_prefix="$WORK/artifacts/" \
    "$WORK/corpus"
