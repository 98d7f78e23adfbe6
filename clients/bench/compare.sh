#!/usr/bin/env bash
# Compare wren-broker with Mosquitto and rumqttd using wren-bench: builds both in release, then
# runs every scenario against each broker in turn (see compare.py and README.md).
#
#   clients/bench/compare.sh            # 3 reps, median (~5-10 min on 2 cores)
#   clients/bench/compare.sh --quick    # 1 rep, half the messages (~2 min)
#   clients/bench/compare.sh --only 'fan-in bounded,latency' --reps 5
#
# Brokers: wren-broker (skipped if it does not build), /usr/sbin/mosquitto, rumqttd from PATH or
# ~/.cargo/bin (`cargo install rumqttd`; skipped with a note if missing).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"

cd "$root"
echo "building wren-bench (release)..." >&2
CARGO_TARGET_DIR="$target" cargo build --release -q -p wren-bench
wren=()
echo "building wren-broker (release)..." >&2
if CARGO_TARGET_DIR="$target" cargo build --release -q -p wren-broker; then
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

exec python3 "$here/compare.py" --bench "$target/release/wren-bench" \
    "${wren[@]}" "${mosquitto[@]}" "${rumqttd[@]}" "$@"
