#!/usr/bin/env bash
# Compare wren-broker with Mosquitto and rumqttd using wren-bench: builds both in release, then
# runs every scenario against each broker in turn (see compare.py and README.md).
#
#   clients/bench/compare.sh            # 3 reps x generator settings 1, 2, 1s (spinning), median (~12 min on 2 cores)
#   clients/bench/compare.sh --quick    # 1 rep, half the messages (~2 min)
#   clients/bench/compare.sh --only 'fan-in bounded,latency' --reps 5
#   clients/bench/compare.sh --only 'idle,idle-sub' --idle-connections 3000 --threads 1
#
# Brokers: wren-broker (skipped if it does not build), /usr/sbin/mosquitto, rumqttd from PATH or
# ~/.cargo/bin (`cargo install rumqttd`; skipped with a note if missing).
#
# The `qos1 bridge` row runs wren-broker -> wren-broker and Mosquitto -> Mosquitto, each pair on
# the same mosquitto.conf text with a bridge (persistence off; compare.py's bridge_conf). A
# bridge that forwards nothing in 10 s fails the run (exit 1), checked before the first rep;
# `--only` without that row leaves it out.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"

cd "$root"
# A failed build falls back to the binary of the last good build, with a warning (the tree may
# be mid-edit); without one, wren-bench is required and wren-broker is skipped.
build() {
    echo "building $1 (release)..." >&2
    if CARGO_TARGET_DIR="$target" cargo build --release -q -p "$1"; then
        return 0
    elif [ -x "$target/release/$1" ]; then
        echo "WARNING: $1 did not build; using the previous build $target/release/$1" >&2
        return 0
    fi
    return 1
}
build wren-bench || { echo "wren-bench did not build" >&2; exit 1; }
wren=()
if build wren-broker; then
    wren=(--wren "$target/release/wren-broker")
else
    echo "note: wren-broker did not build; comparing the others only" >&2
fi

rumqttd=()
if command -v rumqttd >/dev/null; then
    rumqttd=(--rumqttd "$(command -v rumqttd)")
elif [ -x "$HOME/.cargo/bin/rumqttd" ]; then
    rumqttd=(--rumqttd "$HOME/.cargo/bin/rumqttd")
fi

mosquitto=()
if [ -x /usr/sbin/mosquitto ]; then
    mosquitto=(--mosquitto /usr/sbin/mosquitto)
fi

# Say which wren-broker was measured (the tree may hold uncommitted work).
rev="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if ! git -C "$root" diff --quiet HEAD -- broker codec 2>/dev/null; then
    rev="$rev + uncommitted changes in broker/ or codec/"
fi
echo "wren-broker from tree $rev; $(/usr/sbin/mosquitto -h 2>/dev/null | head -1); rumqttd ${rumqttd[1]:+$("${rumqttd[1]}" -V 2>/dev/null)}"

exec python3 "$here/compare.py" --bench "$target/release/wren-bench" \
    "${wren[@]}" "${mosquitto[@]}" "${rumqttd[@]}" "$@"
