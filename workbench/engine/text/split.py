"""Cutting a reply's text into fragments to ask for one after another (sentence pipelining).

A server that only answers once the whole reply is synthesized makes the listener wait for all of it.
Asking for the first sentence on its own, and for the next while it plays, brings the first sound down
to the time that one sentence takes. Two rules make that work:

- **The first fragment is short**: the first sentence, or its first clause when the sentence is long
  (cut at a comma, semicolon, colon or dash, or before a conjunction when it has none).
- **Each fragment is at most `GROWTH` times the one before** (in characters, the space after it
  counted, so that two sentences as long as the one before make the next fragment), merging whole
  sentences up to that. While fragment k plays, fragment k+1 is synthesized: a server at 3x real time
  makes a fragment twice as long in two thirds of fragment k's playing time, with a third to spare for
  its round trip. Growing also keeps a long reply to a handful of requests.
- **No fragment is longer than `MAX_CHARS`**, well inside OpenAI's limit of 4096 characters an input
  (a long reply's eighth doubling would pass it), which also bounds what one fragment's audio costs.

Each fragment says what kind of break follows it (`sentence`, `clause` after a comma and the like, or
`phrase` before a conjunction): fragments are synthesized apart, so the pause the server would have put
there may be missing, and the joiner (`pipeline.Joiner`) puts one back (none for a phrase).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Split(StrEnum):
    AUTO = "auto"  # a sentence at a time to an endpoint that has been seen not to stream, else whole
    SENTENCE = "sentence"  # always a sentence at a time
    OFF = "off"  # the whole reply in one request


SPLITS = tuple(Split)
FIRST_CHARS = 48  # the first fragment, at most (about 8 words: 2.5 s of speech), unless nothing cuts it
GROWTH = 2.0  # each fragment is at most this many times the previous one's length
MAX_CHARS = 2000  # and never longer than this (about two minutes of speech)
MIN_CLAUSE_CHARS = 12  # no clause shorter than this is cut off ("Yes," stays with what follows)
# abbreviations whose full stop does not end a sentence (compared without the stop, in lower case)
ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st vs etc e.g i.e cf approx no fig inc ltd co dept est min max sec vol".split())
# words a clause starts with: a sentence with no punctuation to cut at is cut before one ("after" and the
# like open a clause too; "that" is left out, being as often a determiner)
CONJUNCTIONS = ("and", "but", "or", "so", "because", "which", "while", "when", "although", "though", "where",
                "after", "before", "since", "until", "unless", "if", "whether", "once")

# a sentence ends at . ! ? or … (with any closing quote or bracket) before white space
_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s)")
_CLAUSE = re.compile(r"[,;:]\s|\s[—–-]\s|—")
_BULLET = re.compile(r"\n\s*(?:[-*•]|\d+[.)])\s")


@dataclass(frozen=True)
class Fragment:
    text: str
    after: str  # the break that follows: "sentence", "clause" (punctuation), "phrase" (none) or "end"


def sentences(text: str) -> list[str]:
    """The text's sentences, each with its punctuation; paragraph breaks and list items end one too."""
    out: list[str] = []
    for block in re.split(r"\n\s*\n", text):
        for item in _BULLET.split("\n" + block):
            out.extend(_sentences_in(" ".join(item.split())))
    return [s for s in out if s]


def _sentences_in(text: str) -> list[str]:
    out, start = [], 0
    for m in _END.finditer(text):
        if m.group().startswith(".") and len(m.group()) == 1 and _abbreviation(text[start : m.start()]):
            continue
        out.append(text[start : m.end()].strip())
        start = m.end()
    out.append(text[start:].strip())
    return [s for s in out if s]


def _abbreviation(before: str) -> bool:
    word = before.rsplit(None, 1)[-1].lower() if before.strip() else ""
    return word in ABBREVIATIONS or (len(word) == 1 and word.isalpha())  # "J. K. Rowling"


def first_clause(sentence: str, limit: int) -> tuple[str, str, str] | None:
    """Cut a long sentence after its first clause, within `limit` characters if it can: (clause, rest,
    kind), kind being "clause" after punctuation and "phrase" before a conjunction; None when nothing
    cuts it."""
    best = None
    for m in _CLAUSE.finditer(sentence):
        head, rest = sentence[: m.end()].strip(), sentence[m.end() :].strip()
        if len(head) < MIN_CLAUSE_CHARS or len(rest) < MIN_CLAUSE_CHARS:
            continue
        if best is None or len(head) <= limit:
            best = (head, rest)
        if len(head) >= limit:
            break
    if best is not None:
        return (*best, "clause")
    words = sentence.split()
    cut = None
    for i in range(1, len(words)):
        if words[i].lower() in CONJUNCTIONS:
            head = " ".join(words[:i])
            if len(head) >= MIN_CLAUSE_CHARS and len(sentence) - len(head) >= MIN_CLAUSE_CHARS:
                if cut is None or len(head) <= limit:
                    cut = i
                if len(head) >= limit:
                    break
    if cut is None:
        return None
    return " ".join(words[:cut]), " ".join(words[cut:]), "phrase"


def split_text(text: str, *, first_chars: int = FIRST_CHARS, growth: float = GROWTH,
               max_chars: int = MAX_CHARS) -> list[Fragment]:
    """The fragments to ask for, in order; one fragment when the text has nothing to cut."""
    units = [(s, "sentence") for s in sentences(text)]
    if not units:
        return []
    out: list[Fragment] = []
    budget = float(first_chars)
    while units:
        head, kind = units.pop(0)
        if len(head) > budget:
            cut = first_clause(head, int(budget))
            if cut is not None:
                head, rest, cut_kind = cut
                units.insert(0, (rest, kind))
                kind = cut_kind
        if len(head) > max_chars:  # one sentence too long to ask for: cut at a word
            head, rest = _cut_at_word(head, max_chars)
            units.insert(0, (rest, kind))
            kind = "phrase"
        while units and kind == "sentence" and len(head) + 1 + len(units[0][0]) <= budget:
            nxt, kind = units.pop(0)
            head = f"{head} {nxt}"
        out.append(Fragment(head, kind if units else "end"))
        budget = min(max((len(head) + 1) * growth, first_chars), max_chars)
    return out


def _cut_at_word(text: str, limit: int) -> tuple[str, str]:
    """`text` cut before `limit` characters, at the last space before it if there is one."""
    at = text.rfind(" ", 0, limit + 1)
    if at <= 0:
        at = limit
    return text[:at].rstrip(), text[at:].lstrip()
