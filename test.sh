#!/usr/bin/env bash
# Set up (first time only), start a private PulseAudio null sink, and run the whole test suite.
# Arguments go to pytest (for example: ./test.sh -k buffer).
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh --dev

source scripts/pulse.sh start
trap 'bash scripts/pulse.sh stop' EXIT
# in CI the tests of the real audio path and of the speech-quality judges must run, not be skipped
if [[ "${CI:-}" == "true" ]]; then export WORKBENCH_REQUIRE_AUDIO=1 WORKBENCH_REQUIRE_QUALITY=1; fi
# voicemode's own environment, for the bridge tests and the voicemode-model check (made by setup.sh --dev)
if [[ -x .venv-voicemode/bin/python ]]; then export WORKBENCH_VOICEMODE_PYTHON="$PWD/.venv-voicemode/bin/python"; fi

.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
