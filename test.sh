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

# Two rounds. Most of the suite waits on plays in real time, so the tests that do not need the device run
# on several workers at once (WORKBENCH_TEST_WORKERS, default 4; 0 runs them in this process). Then the
# tests marked `audio` run one at a time: they play to the device and record it, and nothing else may
# play meanwhile. A round that selects no test (say, -k matching only one round) is not a failure.
round() {
    local rc=0
    .venv/bin/python -m pytest -q -p no:cacheprovider "$@" || rc=$?
    if [[ $rc != 0 && $rc != 5 ]]; then exit $rc; fi
}
WORKERS="${WORKBENCH_TEST_WORKERS:-4}"
if [[ "$WORKERS" == 0 ]]; then round -m "not audio" "$@"; else round -n "$WORKERS" --dist worksteal -m "not audio" "$@"; fi
round -m audio "$@"
