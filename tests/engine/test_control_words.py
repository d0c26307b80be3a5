"""The ring's control words are written down twice, in Python (`buffer.Ctl`, the test oracle and the
fallback consumer) and in C (`_playout.c`, the product's consumer): the two lists must name the same words
at the same offsets, and the consumer's states the same codes. Read from the C source itself, so a word
added on one side only fails here, before any audio plays wrong."""

from __future__ import annotations

import re
from pathlib import Path

import workbench.engine.playout as playout
from workbench.engine.playout.buffer import BUFFERING, CTL_WORDS, DONE, PLAYING, STATES, TRAILING, UNDERRUN, Ctl

SOURCE = (Path(playout.__file__).parent / "_playout.c").read_text()


def c_enum(first: str) -> list[str]:
    """The names of the C enum whose first member is `first`, in order (comments dropped)."""
    match = re.search(r"enum\s*\{\s*(" + re.escape(first) + r"\b.*?)\}", SOURCE, re.S)
    assert match, f"no enum starting with {first} in _playout.c"
    body = re.sub(r"/\*.*?\*/", "", match.group(1), flags=re.S)
    return [name.strip() for name in body.split(",") if name.strip()]


def test_the_c_consumer_names_every_control_word_at_pythons_offset() -> None:
    names = c_enum("C_WRITE")
    assert names[-1] == "C_COUNT"
    words = names[:-1]
    assert len(words) == CTL_WORDS == len(Ctl)
    for offset, (c_name, word) in enumerate(zip(words, Ctl, strict=True)):
        assert c_name == "C_" + word.name, f"offset {offset}: C has {c_name}, Python has {word.name}"
        assert word.value == offset


def test_the_consumers_states_have_the_same_codes() -> None:
    assert c_enum("S_BUFFERING") == ["S_" + state.name for state in STATES]
    codes = {"BUFFERING": BUFFERING, "PLAYING": PLAYING, "UNDERRUN": UNDERRUN, "TRAILING": TRAILING, "DONE": DONE}
    assert [codes[state.name] for state in STATES] == list(range(len(STATES)))
