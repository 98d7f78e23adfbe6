#!/usr/bin/env bash
# Print the sensor firmware's flash, static RAM and measured peak stack (release profile:
# opt-level "z", fat LTO, codegen-units 1, panic = abort).
#
#   examples/qemu-sensor/size.sh [--port PORT] [--features v5]
#
# Flash and static RAM come from the ELF's sections (llvm-size, or GNU size). The peak stack is
# measured by running the scenario in QEMU: the firmware paints its free stack at boot and
# reports the deepest word used before it exits. Without --port, this script starts wren-broker
# (built from this workspace) on a free 127.0.0.1 port and leaves the command `led on` there as
# a retained message; with --port it uses that broker, which must deliver `led on` on
# wren/qemu/cmd.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
port="" features=""
while [ $# -gt 0 ]; do
    case "$1" in
        --port) port="$2"; shift 2 ;;
        --features) features="$2"; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "size.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

(cd "$here" && CARGO_TARGET_DIR="$here/target" cargo build --quiet --release --features "$features")
elf="$here/target/thumbv7m-none-eabi/release/qemu-sensor"
sizer=$(command -v llvm-size || command -v size)
section() { "$sizer" -A "$elf" | awk -v s="$1" '$1 == s { print $2; found = 1 } END { if (!found) print 0 }'; }
vt=$(section .vector_table) text=$(section .text) rodata=$(section .rodata)
data=$(section .data) bss=$(section .bss) uninit=$(section .uninit)
flash=$((vt + text + rodata + data))
ram=$((data + bss + uninit))

broker_pid=""
cleanup() { [ -z "$broker_pid" ] || kill "$broker_pid" 2>/dev/null || true; }
trap cleanup EXIT
if [ -z "$port" ]; then
    (cd "$root" && cargo build --quiet -p wren-broker -p wren-clients --bin wren-broker --bin wren-pub)
    bin="${CARGO_TARGET_DIR:-$root/target}/debug"
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "$bin/wren-broker" --bind 127.0.0.1 -p "$port" >/dev/null 2>&1 &
    broker_pid=$!
    for _ in $(seq 100); do
        "$bin/wren-pub" -p "$port" -t wren/qemu/cmd -m "led on" -r -q 1 2>/dev/null && break
        sleep 0.1
    done
fi
report=$("$here/run.sh" --port "$port" --features "$features")
stack=$(printf '%s\n' "$report" | sed -n 's/.*peak stack \([0-9]*\) bytes.*/\1/p')
[ -n "$stack" ] || { echo "size.sh: the scenario did not complete: $report" >&2; exit 1; }

printf 'flash (.vector_table + .text + .rodata + .data): %6d bytes (text %d, rodata %d)\n' "$flash" "$text" "$rodata"
printf 'static RAM (.data + .bss + .uninit):             %6d bytes\n' "$ram"
printf 'peak stack (measured, stack painting):           %6d bytes\n' "$stack"
