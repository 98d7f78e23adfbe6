#!/usr/bin/env bash
# Run every fuzz target for a short time (default 20 s each) from the committed seeds.
# Every target runs; the script exits non-zero if any of them crashed (input in fuzz/artifacts/<target>/).
#
# Usage: fuzz/smoke.sh [SECONDS] [TARGET...]      (needs the nightly toolchain and cargo-fuzz)
set -euo pipefail

cd "$(dirname "$0")/.."          # repository root: cargo fuzz finds ./fuzz from here
seconds="${1:-20}"
shift || true

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

# Each `cargo fuzz run` builds only its own target (before its time budget starts), so a target
# that does not build fails alone instead of stopping the others.
status=0
for target in "${targets[@]}"; do
    corpus="fuzz/corpus/$target"
    mkdir -p "$corpus"
    cp -n fuzz/corpus/seed/* "$corpus"/ 2>/dev/null || true
    echo "=== $target: ${seconds}s ==="
    if ! cargo +nightly fuzz run "$target" "$corpus" fuzz/corpus/seed -- \
        -max_total_time="$seconds" -dict=fuzz/mqtt.dict -print_final_stats=1; then
        echo "!!! $target FAILED (crash input in fuzz/artifacts/$target/)" >&2
        status=1
    fi
done
exit "$status"
