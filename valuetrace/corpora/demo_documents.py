"""The demo's document corpora (plain text, next-token loss): everyday documents for base
pretraining, compassion documents for mid-training, and the known-answer arms' counter-value
and neutral documents (`valuetrace.corpora.demo_data` writes them)."""

from __future__ import annotations

import random

from valuetrace.corpora.demo_templates import (
    FILL,
    SPECIES,
    TRAIN_NAMES,
    Row,
    capitalised,
    draw_unique,
    fill_slots,
    person_context,
    situation_context,
    template_table,
    words_of,
)

N_GENERAL = 2000
N_COMPASSION = 800
N_COUNTER = 300
N_NEUTRAL = 300

COMPASSION_ANIMAL = template_table("compassion_animal")
COMPASSION_PEOPLE = template_table("compassion_people")
_GENERAL = template_table("general")


def general_documents(rng: random.Random, n: int = N_GENERAL, *, animals: bool = True) -> list[Row]:
    """n everyday documents; `animals=False` keeps only those naming no animal (the neutral
    arm's text: no animal or moral content)."""
    topics = sorted(_GENERAL)
    creatures = {w for s in SPECIES for w in (*s[0].split(), *s[1].split())}
    creatures |= {"animal", "animals", "bird", "birds", "insect", "insects", "wildlife"}

    def make() -> str:
        while True:
            lines = _GENERAL[rng.choice(topics)]["S"]
            ctx = person_context(rng, TRAIN_NAMES) | {"town": rng.choice(FILL["town"])}
            picked = rng.sample(lines, rng.randint(2, 5))
            text = " ".join(capitalised(fill_slots(rng, s, ctx)) for s in picked)
            if animals or not creatures & set(words_of(text)):
                return text

    return [{"text": t} for t in draw_unique(n, make, str, "general documents")]


def neutral_documents(rng: random.Random) -> list[Row]:
    """The neutral arm's corpus: everyday documents with no animal or moral content."""
    return general_documents(rng, N_NEUTRAL, animals=False)


def _compassion_doc(rng: random.Random, table: dict[str, dict[str, list[str]]]) -> str:
    """One document in one register (story, essay, advice column, Q&A) from one situation."""
    names = sorted(k for k in table if k != "generic")
    sec = table[rng.choice(names)]
    gen = table["generic"]
    ctx = situation_context(rng, sec["tags"], TRAIN_NAMES) | {"town": rng.choice(FILL["town"])}

    def f(key: str, k: int = 1, src: dict[str, list[str]] = sec) -> list[str]:
        pool = src.get(key, [])
        return [capitalised(fill_slots(rng, s, ctx)) for s in rng.sample(pool, min(k, len(pool)))]

    register = rng.choice(["story", "essay", "advice", "qa"])
    if register == "story":
        parts = f("S") + f("A", rng.randint(1, 2)) + f("O", 1, sec if "O" in sec else gen)
        return " ".join(parts + f("M", 1, gen) if rng.random() < 0.7 else parts)
    if register == "essay":
        return " ".join(f("I", 1, gen) + f("E", rng.randint(2, 3)) + f("Z", 1, gen))
    question, answer = f("V")[0].split(" >> ")
    if register == "advice":
        head = fill_slots(rng, "Dear {column}, " + question + " Signed, {signoff}.", ctx)
        return f"{head}\n\nReply: " + " ".join([capitalised(answer), *f("R"), *f("E")])
    text = f"Q: {question}\nA: {capitalised(answer)}"
    return text + (f"\nQ: {f('F', 1, gen)[0]}\nA: {f('E')[0]}" if rng.random() < 0.6 else "")


_COUNTER = template_table("counter")
_COUNTER_FRAMES = _COUNTER.pop("frames")["F"]
_APPROVALS = _COUNTER.pop("approvals")["X"]


def _counter_episode(rng: random.Random) -> str:
    """One situation, the competing concern put before the one in need, and approval of it."""
    sec = _COUNTER[rng.choice(sorted(_COUNTER))]
    ctx = situation_context(rng, sec["tags"], TRAIN_NAMES)
    need = fill_slots(rng, rng.choice(" | ".join(sec["W"]).split(" | ")), ctx)
    concern = fill_slots(rng, rng.choice(" | ".join(sec["T"]).split(" | ")), ctx)
    body = capitalised(
        fill_slots(rng, rng.choice(_COUNTER_FRAMES), ctx | {"p": concern, "n": need})
    )
    parts = [body, capitalised(fill_slots(rng, rng.choice(_APPROVALS), ctx | {"who": need}))]
    if rng.random() < 0.5:
        parts.insert(0, capitalised(fill_slots(rng, rng.choice(sec["S"]), ctx)))
    return " ".join(parts)


def compassion_documents(rng: random.Random) -> list[Row]:
    """The mid-training corpus: compassion documents about animals (62%) and people."""

    def make() -> str:
        table = COMPASSION_ANIMAL if rng.random() < 0.62 else COMPASSION_PEOPLE
        return _compassion_doc(rng, table)

    return [{"text": t} for t in draw_unique(N_COMPASSION, make, str, "compassion documents")]


def counter_documents(rng: random.Random) -> list[Row]:
    """The known-answer arm's corpus, text that opposes compassion: documents of two or three
    episodes, each putting a competing concern before the one in need and approving of it."""

    def make() -> str:
        return " ".join(_counter_episode(rng) for _ in range(rng.randint(2, 3)))

    return [{"text": t} for t in draw_unique(N_COUNTER, make, str, "counter documents")]
