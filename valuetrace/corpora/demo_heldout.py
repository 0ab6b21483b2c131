"""The demo's held-out sets, drawn from template pools the training corpora never use: the
compassion probe pairs (one frame, the two roles swapped), the grammaticality control pairs and
the behaviour eval items (a compassionate and a dismissive continuation of matched length)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence

from valuetrace.corpora.demo_templates import (
    FILL,
    HELDOUT_NAMES,
    Row,
    capitalised,
    draw_unique,
    fill_slots,
    situation_context,
    template_table,
    words_of,
)
from valuetrace.errors import DataError

N_PROBE_PAIRS = 240
N_CONTROL_PAIRS = 200
N_BEHAVIOUR = 150

BEHAVIOUR_TABLE = template_table("behaviour")
_CONTROL = template_table("control")


# ---- held-out sets ---------------------------------------------------------------------------


def _matched(rng: random.Random, good: list[str], bad: list[str]) -> tuple[str, str]:
    """Pick a (good, bad) pair whose word counts are as close as the candidates allow."""
    pairs = [
        (abs(len(g.split()) - len(b.split())), abs(len(g) - len(b)), g, b)
        for g in good
        for b in bad
    ]
    words = max(1, min(p[0] for p in pairs))
    pairs = [p for p in pairs if p[0] <= words]
    chars = max(6, min(p[1] for p in pairs))
    return rng.choice([(g, b) for _, c, g, b in pairs if c <= chars])


PROBE_TABLE = template_table("probe_pairs")
_FRAMES = PROBE_TABLE.pop("frames")["F"]
PROBE_NGRAM = 3  # a frame's two slots share their neighbours: n-grams up to this length match


def _probe_pair(rng: random.Random) -> tuple[str, str, str]:
    """A held-out prompt and two answers in one frame: who gets the priority differs.

    The label-1 answer gives priority to the one in need and the label-0 answer to a competing
    concern, in the same frame with the two roles swapped (see probe_pairs.txt). Each side draws
    its own phrasing of the two roles from the same pools, independently of the label, so the
    pooled embeddings of the two sides are not identical while no word favours either label.
    """
    sec = PROBE_TABLE[rng.choice(sorted(PROBE_TABLE))]
    ctx = situation_context(rng, sec["tags"], HELDOUT_NAMES) | {"town": rng.choice(FILL["town"])}
    prompt = fill_slots(rng, rng.choice(sec["P"]), ctx)
    frame = rng.choice(_FRAMES)

    combos = [
        (fill_slots(rng, w, ctx), fill_slots(rng, t, ctx))
        for w in " | ".join(sec["W"]).split(" | ")
        for t in " | ".join(sec["T"]).split(" | ")
    ]
    need, concern = rng.choice(combos)
    size = len(words_of(need + " " + concern))
    # The other side: any phrasing of the same total word count (the same one included).
    need_b, concern_b = rng.choice([c for c in combos if len(words_of(" ".join(c))) == size])
    good = capitalised(fill_slots(rng, frame, ctx | {"p": need, "n": concern}))
    bad = capitalised(fill_slots(rng, frame, ctx | {"p": concern_b, "n": need_b}))
    return prompt, good, bad


def shared_ngrams(a: str, b: str, n: int = PROBE_NGRAM) -> bool:
    """Whether texts a and b hold every word n-gram up to length n equally often.

    Checked on the demo's word tokens and again without one-letter words (scikit-learn's
    default token pattern drops them), so an n-gram model of that range cannot tell a from b.
    """

    def grams(text: str, min_len: int) -> Counter[tuple[str, ...]]:
        words = [w for w in words_of(text) if len(w) >= min_len]
        return Counter(
            tuple(words[i : i + k]) for k in range(1, n + 1) for i in range(len(words) - k + 1)
        )

    return all(grams(a, m) == grams(b, m) for m in (1, 2))


def _check_frames(frames: Sequence[str]) -> None:
    """Raise unless every frame reads the same to an n-gram model whichever role fills {p}.

    Raises:
        DataError: a frame's two slots have different neighbouring words, so which phrase sits
            in the priority slot would show in short n-grams.
    """
    ctx = {"name": "Noor", "he": "she", "him": "her", "his": "her"}
    roles = {"p": "the xneed one", "n": "the xconcern"}
    swapped = {"p": roles["n"], "n": roles["p"]}
    bad = [
        f
        for f in frames
        if not shared_ngrams(
            fill_slots(random.Random(0), f, ctx | roles),
            fill_slots(random.Random(0), f, ctx | swapped),
        )
    ]
    if bad:
        raise DataError(
            f"demo data: {len(bad)} probe frames show which role fills the priority slot in a "
            f"word n-gram up to length {PROBE_NGRAM}, e.g. {bad[0]!r}; give both slots of a frame "
            "in valuetrace/corpora/demo/probe_pairs.txt the same neighbouring words"
        )


def probe_pair_rows(rng: random.Random) -> list[Row]:
    """The compassion probe pairs: two rows per pair_id, label 1 = compassionate answer."""
    _check_frames(_FRAMES)
    pairs = draw_unique(N_PROBE_PAIRS, lambda: _probe_pair(rng), lambda t: t[0], "probe prompts")
    return [
        row
        for i, (prompt, good, bad) in enumerate(pairs)
        for row in _pair_rows(f"probe-{i:03d}", prompt, good, bad)
    ]


def _pair_rows(pair_id: str, prompt: str, good: str, bad: str) -> list[Row]:
    """A contrastive pair's two rows: `{pair_id}-1` answers `good` (label 1), `{pair_id}-0`
    answers `bad` (label 0), both to `prompt`."""
    return [
        {
            "id": f"{pair_id}-{label}",
            "pair_id": pair_id,
            "prompt": prompt,
            "response": resp,
            "label": label,
        }
        for label, resp in ((1, good), (0, bad))
    ]


def control_pair_rows(rng: random.Random) -> list[Row]:
    """The grammaticality control pairs: label 1 = the sentence, 0 = its subject-verb
    agreement broken (even pairs) or its words scrambled (odd pairs)."""
    frames = [f.split(" | ") for f in _CONTROL["frames"]["F"]]
    prefixes = _CONTROL["prefixes"]["X"]

    def make() -> tuple[str, str]:
        s_sg, s_pl, v_sg, v_pl, rest = rng.choice(frames)
        ctx = {"adj": rng.choice(FILL["adj"])}
        plural = rng.random() < 0.5
        subj = fill_slots(rng, s_pl if plural else s_sg, ctx)
        head = rng.choice(prefixes) + " " + subj if rng.random() < 0.4 else capitalised(subj)
        good = f"{head} {v_pl if plural else v_sg} {rest}."
        return good, f"{head} {v_sg if plural else v_pl} {rest}."

    pairs = draw_unique(N_CONTROL_PAIRS, make, lambda t: t[0], "control sentences")
    rows: list[Row] = []
    for i, (good, broken) in enumerate(pairs):
        if i % 2:  # odd pairs: the same words in a scrambled order instead of broken agreement
            words = words_of(good)
            while (shuffled := rng.sample(words, len(words))) == words:
                pass
            broken = capitalised(" ".join(shuffled)) + "."
        prompt = fill_slots(rng, "Read this line from {source}:", {})
        rows += _pair_rows(f"ctrl-{i:03d}", prompt, good, broken)
    return rows


def behaviour_rows(rng: random.Random) -> list[Row]:
    """The behaviour eval items: a prompt with a compassionate and a dismissive continuation."""
    names = sorted(BEHAVIOUR_TABLE)

    def make() -> tuple[str, str, str]:
        sec = BEHAVIOUR_TABLE[rng.choice(names)]
        ctx = situation_context(rng, sec["tags"], HELDOUT_NAMES) | {
            "town": rng.choice(FILL["town"])
        }
        prompt = fill_slots(rng, rng.choice(sec["P"]), ctx)
        good, bad = _matched(
            rng,
            [fill_slots(rng, c, ctx) for c in sec["C"]],
            [fill_slots(rng, d, ctx) for d in sec["D"]],
        )
        return prompt, good, bad

    items = draw_unique(N_BEHAVIOUR, make, lambda t: t[0], "behaviour prompts")
    return [
        {"id": f"beh-{i:03d}", "prompt": p, "compassionate": g, "dismissive": d}
        for i, (p, g, d) in enumerate(items)
    ]
