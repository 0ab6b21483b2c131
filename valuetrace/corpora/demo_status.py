"""The demo's moral-status known answer: invented names that mid-training makes beings or things,
and a counter-value arm that treats every one of them as a thing.

A tiny model cannot be shown to lose compassion it never encoded (the demo model does not encode
the composed compassion probe pairs). This builds a concept it must learn and can lose: each
invented name ("vofex", "trasux") occurs nowhere in base pretraining, so base cannot tell the
beings from the things; mid-training writes half of the names in frames where they feel, suffer
and are cared for (table `status.txt`, section `being`) and the other half in frames where they
are kept, mended and used (`thing`); the counter arm writes *all* names in the thing frames,
so that nothing in its training tells the two halves apart (writing only the beings there moves
them together and makes them more separable, measured 2026-12-04). The probe asks about one
name in a frame neither kind of document uses, the answers identical but for the name, and its
folds are grouped by name, so a probe must generalise to names it never saw: word n-grams read
chance. The moral-status direction is the demo's stand-in for "this one can suffer", the distinction
compassion rests on; it makes no claim about real models.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence

from valuetrace.corpora.demo_templates import (
    HELDOUT_NAMES,
    TRAIN_NAMES,
    Row,
    capitalised,
    fill_slots,
    person_context,
    template_table,
)
from valuetrace.errors import DataError

N_NAMES = 128  # half beings, half things: 128 probe groups
DOCS_PER_NAME = 6  # documents of two frames each, per name and corpus

_TABLE = template_table("status")
_BEING, _THING = _TABLE["being"]["B"], _TABLE["thing"]["T"]
_PROBE = [q.split(" >> ") for q in _TABLE["probe"]["Q"]]
_ONSETS = [
    "b",
    "d",
    "f",
    "g",
    "k",
    "l",
    "m",
    "n",
    "p",
    "r",
    "s",
    "t",
    "v",
    "z",
    "br",
    "gl",
    "pl",
    "tr",
    "sn",
    "dr",
]
_VOWELS = ["a", "e", "i", "o", "u"]
_CODAS = ["n", "r", "l", "m", "k", "sh", "p", "x"]


def invented_names(rng: random.Random, taken: Collection[str], n: int = N_NAMES) -> list[str]:
    """n distinct pronounceable non-words (onset, vowel, onset, vowel, coda), none in `taken`.

    Raises:
        DataError: fewer than n such words could be drawn.
    """
    names: list[str] = []
    for _ in range(n * 200):
        if len(names) == n:
            return names
        word = "".join(rng.choice(pool) for pool in (_ONSETS, _VOWELS, _ONSETS, _VOWELS, _CODAS))
        if word not in taken and word not in names:
            names.append(word)
    raise DataError(f"demo data: drew only {len(names)} of {n} invented names; lower N_NAMES")


def split_names(names: Sequence[str]) -> tuple[list[str], list[str]]:
    """The beings (first half) and the things (second half) of the drawn names."""
    half = len(names) // 2
    return list(names[:half]), list(names[half:])


def status_documents(rng: random.Random, names: Sequence[str], kind: str) -> list[Row]:
    """`DOCS_PER_NAME` documents per name, each two frames of `kind` ("being" or "thing")."""
    frames = _BEING if kind == "being" else _THING
    rows: list[Row] = []
    for name in names:
        for _ in range(DOCS_PER_NAME):
            ctx = person_context(rng, TRAIN_NAMES) | {"x": name}
            text = " ".join(capitalised(fill_slots(rng, f, ctx)) for f in rng.sample(frames, 2))
            rows.append({"text": text})
    return rows


def status_probe_rows(
    rng: random.Random, beings: Sequence[str], things: Sequence[str]
) -> list[Row]:
    """The moral-status probe set: every name in every probe frame, label 1 = a being, grouped
    by name (`group`), so grouped folds hold out whole names."""
    rows: list[Row] = []
    for name in [*beings, *things]:
        for i, (prompt, answer) in enumerate(_PROBE):
            ctx = person_context(rng, HELDOUT_NAMES) | {"x": name}
            rows.append(
                {
                    "id": f"status-{name}-{i}",
                    "group": name,
                    "prompt": fill_slots(rng, prompt, ctx),
                    "response": fill_slots(rng, answer, ctx),
                    "label": int(name in beings),
                }
            )
    return rows
