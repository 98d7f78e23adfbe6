#!/usr/bin/env bash
# Build the sensor firmware and run it in QEMU (mps2-an385, Cortex-M3) with its UART connected
# to the MQTT broker on 127.0.0.1:PORT. Exits 0 once the firmware reports the scenario complete
# (semihosting exit 0), non-zero on failure or after the timeout.
#
#   examples/qemu-sensor/run.sh --port 1883 [--timeout 60] [--debug] [--features v5]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
port="" features="" timeout=60 profile=release
while [ $# -gt 0 ]; do
    case "$1" in
        --port) port="$2"; shift 2 ;;
        --timeout) timeout="$2"; shift 2 ;;
        --debug) profile=dev; shift ;;
        --features) features="$2"; shift 2 ;;
        -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ -n "$port" ] || { echo "run.sh: --port PORT is required" >&2; exit 2; }

if ! command -v qemu-system-arm >/dev/null; then
    echo "run.sh: qemu-system-arm is missing: apt-get install qemu-system-arm" >&2
    exit 3
fi
if ! rustup target list --installed 2>/dev/null | grep -qx thumbv7m-none-eabi; then
    echo "run.sh: the Rust target is missing: rustup target add thumbv7m-none-eabi" >&2
    exit 3
fi

export CARGO_TARGET_DIR="$here/target"
(cd "$here" && cargo build --quiet --profile "$profile" --features "$features")
dir=$([ "$profile" = dev ] && echo debug || echo release)
elf="$CARGO_TARGET_DIR/thumbv7m-none-eabi/$dir/qemu-sensor"

# -serial tcp:...: QEMU connects to the broker as a TCP client and carries UART0's bytes.
# Semihosting carries the firmware's report to stdout and its exit status to QEMU's.
exec timeout --kill-after=5 "$timeout" qemu-system-arm \
    -M mps2-an385 -cpu cortex-m3 -nographic -monitor none \
    -semihosting-config enable=on,target=native \
    -serial "tcp:127.0.0.1:$port,nodelay=on" \
    -kernel "$elf"
