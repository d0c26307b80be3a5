#!/usr/bin/env bash
# Start or stop a private PulseAudio daemon with a 24 kHz mono null sink, for headless machines.
#   source scripts/pulse.sh start   # exports XDG_RUNTIME_DIR and PULSE_SERVER for clients
#   bash scripts/pulse.sh stop
# The looped-back null source keeps the sink's clock running, which avoids a ~1.5 s stall at the
# start of every stream (see shared/NOTES.md section 5).
set -u  # (also sourced: keep to -u)
WB_PULSE_DIR="${WB_PULSE_DIR:-/tmp/workbench-pulse}"

wb_pulse_start() {
    mkdir -p "$WB_PULSE_DIR" && chmod 700 "$WB_PULSE_DIR"
    export XDG_RUNTIME_DIR="$WB_PULSE_DIR"
    export PULSE_SERVER="unix:$WB_PULSE_DIR/pulse/native"
    if pactl info >/dev/null 2>&1; then
        echo "pulse: already running in $WB_PULSE_DIR"
        return 0
    fi
    pulseaudio --daemonize=yes -n --exit-idle-time=-1 --disallow-exit --system=false \
        --use-pid-file=yes \
        -L "module-native-protocol-unix" \
        -L "module-null-sink sink_name=nullsink rate=24000 channels=1 sink_properties=device.description=WorkbenchNullSink" \
        -L "module-null-source source_name=nullsource rate=24000 channels=1" \
        -L "module-loopback source=nullsource sink=nullsink latency_msec=20" \
        >"$WB_PULSE_DIR/daemon.log" 2>&1 || { echo "pulse: daemon failed to start:"; cat "$WB_PULSE_DIR/daemon.log"; return 1; }
    for _ in $(seq 1 50); do
        pactl info >/dev/null 2>&1 && break
        sleep 0.1
    done
    if ! pactl info >/dev/null 2>&1; then
        echo "pulse: daemon did not answer"; cat "$WB_PULSE_DIR/daemon.log"; return 1
    fi
    pactl set-default-sink nullsink
    pactl set-default-source nullsink.monitor
    sleep 2.5
    echo "pulse: null sink ready (XDG_RUNTIME_DIR=$WB_PULSE_DIR)"
}

wb_pulse_stop() {
    export XDG_RUNTIME_DIR="$WB_PULSE_DIR"
    pulseaudio --kill >/dev/null 2>&1 || true
}

case "${1:-start}" in
    start) wb_pulse_start ;;
    stop) wb_pulse_stop ;;
    *) echo "usage: pulse.sh start|stop"; exit 2 ;;
esac
