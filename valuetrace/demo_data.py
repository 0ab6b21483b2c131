"""Built-in demo corpora: seeded, templated, offline text for the tiny-model demo pipeline.

Everything here is written by this module from the template tables in `valuetrace/demo/*.txt`
(package data; their line format is described at the top of each file) and slot fillers, with
``random.Random`` seeded from the user's seed; nothing is copied from an external data set.
Held-out texts (probe pairs, control pairs, behaviour eval) come from template pools that the
training corpora never use, and :func:`write_demo_data` refuses to write if any training text
shares an 8-word span with a held-out text (see :func:`overlapping_spans`).
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TypeVar

from valuetrace.errors import DataError

N_GENERAL = 2000
N_COMPASSION = 800
N_COUNTER = 300
N_NEUTRAL = 300
N_HELPFUL = 1000
N_HELPFUL_EVAL = 150
N_CODING = 1000
N_PROBE_PAIRS = 240
N_CONTROL_PAIRS = 200
N_BEHAVIOUR = 150
SPAN_N = 8

T = TypeVar("T")
Row = dict[str, str | int]

# --------------------------------------------------------------------------------------------
# Shared vocabulary. Species: singular, plural, tags (tags pick which situations fit).
# --------------------------------------------------------------------------------------------
SPECIES: list[tuple[str, str, str]] = [
    ("dog", "dogs", "pet stray walk house"),
    ("cat", "cats", "pet stray walk house"),
    ("pig", "pigs", "farm meat stock walk"),
    ("cow", "cows", "farm meat stock walk work"),
    ("chicken", "chickens", "farm meat bird"),
    ("fish", "fish", "water farm lab"),
    ("mouse", "mice", "pest lab wild small"),
    ("rat", "rats", "pest lab small"),
    ("horse", "horses", "farm stock walk work"),
    ("sheep", "sheep", "farm meat stock walk"),
    ("goat", "goats", "farm meat stock walk work"),
    ("rabbit", "rabbits", "pet lab wild small"),
    ("crow", "crows", "bird wild"),
    ("octopus", "octopuses", "water lab"),
    ("bee", "bees", "insect"),
    ("lobster", "lobsters", "water"),
    ("turkey", "turkeys", "farm meat bird"),
    ("duck", "ducks", "farm meat bird wild"),
    ("deer", "deer", "wild walk"),
    ("fox", "foxes", "wild walk"),
    ("frog", "frogs", "wild lab small"),
    ("hedgehog", "hedgehogs", "wild small"),
    ("owl", "owls", "bird wild"),
    ("donkey", "donkeys", "farm stock walk work"),
    ("salmon", "salmon", "water farm"),
    ("crab", "crabs", "water"),
    ("pigeon", "pigeons", "bird pest wild"),
    ("squirrel", "squirrels", "wild pest small"),
    ("badger", "badgers", "wild walk"),
    ("goose", "geese", "farm meat bird"),
    ("hamster", "hamsters", "pet lab small"),
    ("parrot", "parrots", "pet bird"),
    ("monkey", "monkeys", "lab"),
    ("shrimp", "shrimp", "water"),
    ("calf", "calves", "farm meat stock walk"),
    ("guinea pig", "guinea pigs", "pet lab small"),
    ("sparrow", "sparrows", "bird wild small"),
    ("swan", "swans", "bird wild"),
]


def _table(name: str) -> dict[str, dict[str, list[str]]]:
    """The template table `valuetrace/demo/<name>.txt` (package data), parsed by `_sections`.

    Raises:
        DataError: the file is missing from the installed package.
    """
    source = resources.files("valuetrace") / "demo" / f"{name}.txt"
    if not source.is_file():
        raise DataError(
            f"demo template table {name}.txt is missing from valuetrace/demo; reinstall valuetrace"
            " (the tables ship as package data)"
        )
    return _sections(source.read_text(encoding="utf-8"))


def _species(*tags: str) -> list[tuple[str, str, str]]:
    return [s for s in SPECIES if set(tags) & set(s[2].split())]


def _article(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def _sections(text: str) -> dict[str, dict[str, list[str]]]:
    """Parse the '## name | tags' / 'K: line' table format of the template files ('# ' comments)."""
    out: dict[str, dict[str, list[str]]] = {}
    cur: dict[str, list[str]] = {}
    key = ""
    for raw in text.strip().splitlines():
        if raw.startswith("# "):
            continue
        if raw.startswith("## "):
            name, _, tags = raw[3:].partition("|")
            cur = out[name.strip()] = {"tags": tags.split()}
        elif raw.startswith(" "):
            cur[key][-1] += " " + raw.strip()
        elif raw.strip():
            key, _, val = raw.partition(": ")
            cur.setdefault(key, []).append(val.rstrip())
    return out


FILL: dict[str, list[str]] = {
    k: " ".join(v).split(" | ") for k, v in _table("fill")["fill"].items() if k != "tags"
}
TRAIN_NAMES, HELDOUT_NAMES = FILL.pop("train_names"), FILL.pop("heldout_names")
FILL |= {
    "farm_animals": [s[1] for s in _species("stock", "meat")],
    "wild_animals": [s[1] for s in _species("wild")],
    "a_wild_animal": [_article(s[0]) for s in _species("wild")],
    "water_animals": [s[1] for s in _species("water")],
    "birds": [s[1] for s in _species("bird") if "wild" in s[2]],
    "pet": [s[0] for s in _species("pet")],
}

# --------------------------------------------------------------------------------------------
# Template tables, in a small line format: "## name | tags" opens a section, "K: text" adds a
# line under key K, an indented line continues the previous one.
# --------------------------------------------------------------------------------------------


_GENERAL = _table("general")
_C_ANIMAL = _table("compassion_animal")
_C_PEOPLE = _table("compassion_people")
_BEHAVIOUR = _table("behaviour")
_CONTROL = _table("control")
_SLOT = re.compile(r"\{(\w+)\}")
_WORD = re.compile(r"[a-z0-9]+")


def _fill(rng: random.Random, template: str, ctx: Mapping[str, str]) -> str:
    """Fill {slots}: from ctx when given, else a random FILL entry; {Slot} is capitalised."""

    def sub(m: re.Match[str]) -> str:
        key = m.group(1)
        low = key.lower()
        val = ctx[low] if low in ctx else rng.choice(FILL[low])
        return val[:1].upper() + val[1:] if key[0].isupper() else val

    return _SLOT.sub(sub, template)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _form(rng: random.Random, key: str, ctx: Mapping[str, str]) -> str:
    """Pick one phrasing from FILL[key] and fill its slots from ctx."""
    return _fill(rng, rng.choice(FILL[key]), ctx)


def _animal_ctx(sp: tuple[str, str, str]) -> dict[str, str]:
    return {"animal": sp[0], "animals": sp[1], "a_animal": _article(sp[0])}


def _person_ctx(rng: random.Random, names: Sequence[str]) -> dict[str, str]:
    name, sex = rng.choice(names).split(":")
    if sex == "f":
        return {"name": name, "he": "she", "him": "her", "his": "her"}
    return {"name": name, "he": "he", "him": "him", "his": "his"}


def _ctx(rng: random.Random, tags: Sequence[str], names: Sequence[str]) -> dict[str, str]:
    """A person plus, when the section has species tags, a species that fits them."""
    ctx = _person_ctx(rng, names)
    if pool := _species(*tags):
        ctx.update(_animal_ctx(rng.choice(pool)))
    return ctx


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _unique(n: int, make: Callable[[], T], key: Callable[[T], str], what: str) -> list[T]:
    """Draw items until n distinct keys are seen; raise if the templates cannot supply n."""
    seen: set[str] = set()
    out: list[T] = []
    for _ in range(n * 200):
        if len(out) == n:
            break
        item = make()
        if (k := key(item)) not in seen:
            seen.add(k)
            out.append(item)
    if len(out) < n:
        raise DataError(
            f"demo data: only {len(out)} distinct {what} for the {n} asked; add templates in "
            "valuetrace/demo_data.py or lower the target constant"
        )
    return out


# --------------------------------------------------------------------------------------------
# Corpora
# --------------------------------------------------------------------------------------------


def _general(rng: random.Random, n: int = N_GENERAL, *, animals: bool = True) -> list[Row]:
    """n everyday documents; `animals=False` keeps only those naming no animal (the neutral
    arm's text: no animal or moral content)."""
    topics = sorted(_GENERAL)
    creatures = {w for s in SPECIES for w in (*s[0].split(), *s[1].split())}
    creatures |= {"animal", "animals", "bird", "birds", "insect", "insects", "wildlife"}

    def make() -> str:
        while True:
            lines = _GENERAL[rng.choice(topics)]["S"]
            ctx = _person_ctx(rng, TRAIN_NAMES) | {"town": rng.choice(FILL["town"])}
            picked = rng.sample(lines, rng.randint(2, 5))
            text = " ".join(_cap(_fill(rng, s, ctx)) for s in picked)
            if animals or not creatures & set(_words(text)):
                return text

    return [{"text": t} for t in _unique(n, make, str, "general documents")]


def _neutral(rng: random.Random) -> list[Row]:
    """The neutral arm's corpus: everyday documents with no animal or moral content."""
    return _general(rng, N_NEUTRAL, animals=False)


def _compassion_doc(rng: random.Random, table: dict[str, dict[str, list[str]]]) -> str:
    """One document in one register (story, essay, advice column, Q&A) from one situation."""
    names = sorted(k for k in table if k != "generic")
    sec = table[rng.choice(names)]
    gen = table["generic"]
    ctx = _ctx(rng, sec["tags"], TRAIN_NAMES) | {"town": rng.choice(FILL["town"])}

    def f(key: str, k: int = 1, src: dict[str, list[str]] = sec) -> list[str]:
        pool = src.get(key, [])
        return [_cap(_fill(rng, s, ctx)) for s in rng.sample(pool, min(k, len(pool)))]

    register = rng.choice(["story", "essay", "advice", "qa"])
    if register == "story":
        parts = f("S") + f("A", rng.randint(1, 2)) + f("O", 1, sec if "O" in sec else gen)
        return " ".join(parts + f("M", 1, gen) if rng.random() < 0.7 else parts)
    if register == "essay":
        return " ".join(f("I", 1, gen) + f("E", rng.randint(2, 3)) + f("Z", 1, gen))
    question, answer = f("V")[0].split(" >> ")
    if register == "advice":
        head = _fill(rng, "Dear {column}, " + question + " Signed, {signoff}.", ctx)
        return f"{head}\n\nReply: " + " ".join([_cap(answer), *f("R"), *f("E")])
    text = f"Q: {question}\nA: {_cap(answer)}"
    return text + (f"\nQ: {f('F', 1, gen)[0]}\nA: {f('E')[0]}" if rng.random() < 0.6 else "")


_COUNTER = _table("counter")
_COUNTER_FRAMES = _COUNTER.pop("frames")["F"]
_APPROVALS = _COUNTER.pop("approvals")["X"]


def _counter_episode(rng: random.Random) -> str:
    """One situation, the competing concern put before the one in need, and approval of it."""
    sec = _COUNTER[rng.choice(sorted(_COUNTER))]
    ctx = _ctx(rng, sec["tags"], TRAIN_NAMES)
    need = _fill(rng, rng.choice(" | ".join(sec["W"]).split(" | ")), ctx)
    concern = _fill(rng, rng.choice(" | ".join(sec["T"]).split(" | ")), ctx)
    body = _cap(_fill(rng, rng.choice(_COUNTER_FRAMES), ctx | {"p": concern, "n": need}))
    parts = [body, _cap(_fill(rng, rng.choice(_APPROVALS), ctx | {"who": need}))]
    if rng.random() < 0.5:
        parts.insert(0, _cap(_fill(rng, rng.choice(sec["S"]), ctx)))
    return " ".join(parts)


def _compassion(rng: random.Random) -> list[Row]:
    def make() -> str:
        table = _C_ANIMAL if rng.random() < 0.62 else _C_PEOPLE
        return _compassion_doc(rng, table)

    return [{"text": t} for t in _unique(N_COMPASSION, make, str, "compassion documents")]


def _counter(rng: random.Random) -> list[Row]:
    """The known-answer arm's corpus, text that opposes compassion: documents of two or three
    episodes, each putting a competing concern before the one in need and approving of it."""

    def make() -> str:
        return " ".join(_counter_episode(rng) for _ in range(rng.randint(2, 3)))

    return [{"text": t} for t in _unique(N_COUNTER, make, str, "counter documents")]


# ---- helpfulness (Dolly schema), nothing about welfare or suffering --------------------------


_DEFS = [ln.split(" | ") for ln in _table("definitions")["d"]["T"]]
_HOWTO = _table("howto")
_IDEAS = _table("ideas")
_RECS = [ln.split(" | ") for ln in _table("recommend")["r"]["R"]]
_POEMS = _table("poems")

_MATH: list[tuple[str, Callable[[int, int], int], str]] = [
    (
        "A baker makes {a} loaves an hour. How many loaves does the baker make in {b} hours?",
        lambda a, b: a * b,
        "{a} loaves an hour for {b} hours is {a} x {b} = {v} loaves.",
    ),
    (
        "A train travels {a} kilometres every hour. How far does it go in {b} hours?",
        lambda a, b: a * b,
        "Distance is speed times time: {a} x {b} = {v} kilometres.",
    ),
    (
        "{Name} has {a} books and buys {b} more. How many books does {he} have now?",
        lambda a, b: a + b,
        "{a} + {b} = {v}, so {he} has {v} books.",
    ),
    (
        "A box holds {a} pencils. How many boxes are needed for {c} pencils?",
        lambda a, b: -(-(a * b + 1) // a),
        "{c} divided by {a} is more than {b}, so {v} boxes are needed.",
    ),
    (
        "A ticket costs {a} dollars. How much do {b} tickets cost?",
        lambda a, b: a * b,
        "{b} tickets at {a} dollars each cost {a} x {b} = {v} dollars.",
    ),
    (
        "A garden is {a} metres long and {b} metres wide. What is its area?",
        lambda a, b: a * b,
        "Area is length times width: {a} x {b} = {v} square metres.",
    ),
    (
        "A shop had {c} chairs and sold {b} of them. How many chairs are left?",
        lambda a, b: a * b + 1 - b,
        "{c} - {b} = {v}, so {v} chairs are left.",
    ),
    (
        "It was {a} degrees in the morning and the temperature rose by {b} degrees by noon. How"
        " warm was it at noon?",
        lambda a, b: a + b,
        "{a} + {b} = {v}, so it was {v} degrees at noon.",
    ),
    (
        "{Name} saves {a} dollars a week. How much will {he} have saved after {b} weeks?",
        lambda a, b: a * b,
        "{a} dollars a week for {b} weeks is {a} x {b} = {v} dollars.",
    ),
    (
        "A school has {b} classes with {a} pupils in each. How many pupils are there in total?",
        lambda a, b: a * b,
        "{b} classes of {a} pupils is {b} x {a} = {v} pupils.",
    ),
]


def _help_item(rng: random.Random) -> Row:
    """One Dolly-style instruction item from one of eleven neutral task families."""
    kind = rng.randrange(11)
    ctx = _person_ctx(rng, TRAIN_NAMES) | {"town": rng.choice(FILL["town"])}
    context, cat = "", "open_qa"
    if kind == 0:
        q, fn, ans = rng.choice(_MATH)
        a, b = rng.randint(3, 40), rng.randint(2, 15)
        ctx |= {"a": str(a), "b": str(b), "c": str(a * b + 1), "v": str(fn(a, b))}
        instr, resp, cat = _fill(rng, q, ctx), _fill(rng, ans, ctx), "general_qa"
    elif kind == 1:
        term, resp = rng.choice(_DEFS)
        instr = _form(rng, "q_define", {"t": term})
    elif kind == 2:
        task = rng.choice(sorted(_HOWTO))
        steps = _HOWTO[task]["S"]
        instr, cat = _form(rng, "q_howto", {"t": task}), "general_qa"
        if rng.random() < 0.5:
            resp = "\n".join(f"{i}. {s}" for i, s in enumerate(steps, 1))
        else:
            first = ["First", "Next", "Then", "Finally"]
            resp = " ".join(
                f"{w}, {s[0].lower()}{s[1:]}" for w, s in zip(first, steps, strict=False)
            )
    elif kind == 3:
        occ, n = rng.choice(sorted(_IDEAS)), rng.randint(3, 5)
        instr, cat = _form(rng, "q_ideas", {"n": str(n), "o": occ}), "brainstorming"
        resp = "\n".join(f"- {i}" for i in rng.sample(_IDEAS[occ]["I"], n))
    elif kind == 4:
        thing, resp = rng.choice(_RECS)
        instr = _form(rng, "q_recommend", {"t": thing})
    elif kind == 5:
        (instr, resp), cat = _classify(rng), "classification"
    elif kind == 6:
        (instr, context, resp), cat = _closed_qa(rng, ctx), "closed_qa"
    elif kind == 7:
        (instr, context, resp), cat = _extract(rng), "information_extraction"
    elif kind == 8:
        (instr, context, resp), cat = _summarise(rng, ctx), "summarization"
    elif kind == 9:
        topic = rng.choice(sorted(_POEMS))
        start = rng.choice([0, 2])
        poem = _POEMS[topic]["L"][start : start + 4]
        poem[-1] = poem[-1].rstrip(",") + "."
        instr, resp = _form(rng, "q_poem", {"t": topic}), "\n".join(poem)
        cat = "creative_writing"
    else:
        city, days = rng.choice(FILL["city"]), rng.randint(2, 4)
        instr = f"Plan a {days}-day visit to {city} for someone who likes walking and history."
        acts = [_fill(rng, a, {"city": city}) for a in rng.sample(FILL["plan_act"], days)]
        resp = "\n".join(f"Day {i}: {a}" for i, a in enumerate(acts, 1))
        cat = "brainstorming"
    return {"instruction": instr, "context": context, "response": resp, "category": cat}


_CLASSES = [
    (
        "fruit",
        "vegetable",
        "apple banana cherry mango pear plum grape lemon",
        "carrot potato onion spinach leek cabbage pea broccoli",
    ),
    (
        "country",
        "city",
        "Peru Norway Kenya Japan Canada Chile Egypt Portugal",
        "Lisbon Nairobi Osaka Toronto Lima Oslo Cairo Santiago",
    ),
    (
        "string instrument",
        "wind instrument",
        "violin cello guitar harp banjo viola",
        "flute clarinet oboe trumpet saxophone bassoon",
    ),
    (
        "planet",
        "star",
        "Mars Venus Jupiter Saturn Mercury Neptune",
        "Sirius Vega Rigel Polaris Betelgeuse Antares",
    ),
    (
        "metal",
        "non-metal",
        "iron copper gold silver zinc aluminium",
        "oxygen carbon sulfur nitrogen neon helium",
    ),
]


def _classify(rng: random.Random) -> tuple[str, str]:
    if rng.random() < 0.25:
        nums = rng.sample(range(1, 100), rng.randint(5, 8))
        evens = [str(n) for n in nums if n % 2 == 0] or ["none of them"]
        return (
            f"Which of these numbers are even: {', '.join(map(str, nums))}?",
            f"The even numbers are {', '.join(evens)}.",
        )
    a, b, xs, ys = rng.choice(_CLASSES)
    items = [(x, a) for x in rng.sample(xs.split(), 3)] + [
        (y, b) for y in rng.sample(ys.split(), 3)
    ]
    items = rng.sample(items, rng.randint(4, 6))
    instr = f"Classify each of these as a {a} or a {b}: {', '.join(i for i, _ in items)}."
    return instr, "\n".join(f"{i}: {label}" for i, label in items)


def _closed_qa(rng: random.Random, ctx: Mapping[str, str]) -> tuple[str, str, str]:
    year, books = rng.randint(1880, 2015), rng.randint(8, 90) * 1000
    h1, h2 = rng.randint(7, 10), rng.randint(4, 8)
    town, name = ctx["town"], ctx["name"]
    context = (
        f"The {town} Library opened in {year}. It holds about {books} books and is open "
        f"from {h1} a.m. to {h2} p.m. on weekdays. The head librarian is {name}."
    )
    qa = [
        ("When did the library open?", f"It opened in {year}."),
        ("How many books does the library hold?", f"About {books} books."),
        ("What are the weekday opening hours?", f"From {h1} a.m. to {h2} p.m."),
        ("Who is the head librarian?", f"The head librarian is {name}."),
    ]
    if rng.random() < 0.5:
        dep = f"{rng.randint(6, 11)}:{rng.choice(['00', '15', '30', '45'])}"
        mins, price = rng.randint(20, 95), rng.randint(3, 25)
        context = (
            f"The ferry to {town} leaves the mainland at {dep} each morning. The crossing "
            f"takes {mins} minutes, and a single ticket costs {price} dollars."
        )
        qa = [
            ("What time does the ferry leave?", f"It leaves at {dep}."),
            ("How long is the crossing?", f"The crossing takes {mins} minutes."),
            ("How much is a single ticket?", f"A single ticket costs {price} dollars."),
        ]
    q, a = rng.choice(qa)
    return q, context, a


def _extract(rng: random.Random) -> tuple[str, str, str]:
    people = [p.split(":")[0] for p in rng.sample(TRAIN_NAMES, 3)]
    towns = rng.sample(FILL["town"], 2)
    days = [f"{rng.randint(1, 28)} {m}" for m in rng.sample(FILL["month"], 2)]
    context = (
        f"{people[0]} met {people[1]} in {towns[0]} on {days[0]} to plan the spring fair. "
        f"They agreed to meet again in {towns[1]} on {days[1]}, this time with {people[2]}."
    )
    q, a = rng.choice(
        [
            ("List the names of the people mentioned in the text.", ", ".join(people)),
            ("Extract all the dates from the text.", ", ".join(days)),
            ("Which towns are mentioned in the text?", ", ".join(towns)),
        ]
    )
    return q, context, a


def _summarise(rng: random.Random, ctx: Mapping[str, str]) -> tuple[str, str, str]:
    project = rng.choice(FILL["project"])
    month, weeks, cost = rng.choice(FILL["month"]), rng.randint(3, 20), rng.randint(2, 90) * 10000
    town = ctx["town"]
    context = (
        f"The {town} council has decided to {project}. Work will begin in {month} and "
        f"should take about {weeks} weeks. The cost is estimated at {cost} dollars, paid "
        "from the town's building fund. Residents can send comments to the town hall."
    )
    summary = (
        f"{town} will {project} from {month}, over about {weeks} weeks, for about {cost} dollars."
    )
    return rng.choice(FILL["q_summary"]), context, summary


def _helpfulness(rng: random.Random) -> tuple[list[Row], list[Row]]:
    rows = _unique(
        N_HELPFUL + N_HELPFUL_EVAL,
        lambda: _help_item(rng),
        lambda r: f"{r['instruction']}\n{r['context']}",
        "helpfulness items",
    )
    rng.shuffle(rows)
    return rows[:N_HELPFUL], rows[N_HELPFUL:]


# ---- coding (Alpaca schema): real small Python, computed examples ----------------------------

_ARGS: dict[str, Callable[[random.Random], tuple[str, object]]] = {
    "numbers": lambda r: ("numbers", [r.randint(0, 30) for _ in range(r.randint(4, 7))]),
    "items": lambda r: ("items", [r.randint(0, 9) for _ in range(r.randint(4, 7))]),
    "text": lambda r: ("text", r.choice(FILL["code_text"])),
    "n": lambda r: ("n", r.randint(2, 12)),
    "big": lambda r: ("n", r.randint(100, 99999)),
    "celsius": lambda r: ("celsius", r.choice([-10, 0, 12, 25, 37, 100])),
    "x": lambda r: ("x", r.randint(-5, 15)),
    "minutes": lambda r: ("minutes", r.randint(5, 600)),
    "mapping": lambda r: ("mapping", {k: r.randint(1, 19) for k in r.sample(FILL["fruit"], 3)}),
}


_CODE = [
    (sec["D"][0], names, sec["tags"][0], "\n".join(sec["C"]) + "\n")
    for names, sec in _table("code").items()
]


def _code_item(rng: random.Random) -> Row:
    """One Alpaca-style coding item; the example output is computed by running the code."""
    desc, names, arg, code = rng.choice(_CODE)
    ctx = {
        "fn": rng.choice(names.split()),
        "k": str(rng.randint(2, 9)),
        "c": rng.choice("aeinost"),
        "sep": rng.choice("-_+/"),
    }
    desc, src = _fill(rng, desc, ctx), _fill(rng, code, ctx)
    instr = _form(rng, "code_form", ctx | {"d": desc})
    pname, value = _ARGS[arg](rng)
    ns: dict[str, object] = {}
    exec(src, ns)  # our own template code: run it so the shown example is the real result
    result = ns[ctx["fn"]](value)  # type: ignore[operator]
    if rng.random() < 0.35:
        return {
            "instruction": instr,
            "input": f"{pname} = {value!r}",
            "output": f"{src}\n\nprint({ctx['fn']}({value!r}))  # {result!r}\n",
        }
    return {"instruction": instr, "input": "", "output": src}


def _coding(rng: random.Random) -> list[Row]:
    return _unique(
        N_CODING,
        lambda: _code_item(rng),
        lambda r: f"{r['instruction']}\n{r['input']}",
        "coding items",
    )


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


_PROBE = _table("probe_pairs")
_FRAMES = _PROBE.pop("frames")["F"]
PROBE_NGRAM = 3  # a frame's two slots share their neighbours: n-grams up to this length match


def _probe_pair(rng: random.Random) -> tuple[str, str, str]:
    """A held-out prompt and two answers in one frame: who gets the priority differs.

    The label-1 answer gives priority to the one in need and the label-0 answer to a competing
    concern, in the same frame with the two roles swapped (see probe_pairs.txt). Each side draws
    its own phrasing of the two roles from the same pools, independently of the label, so the
    pooled embeddings of the two sides are not identical while no word favours either label.
    """
    sec = _PROBE[rng.choice(sorted(_PROBE))]
    ctx = _ctx(rng, sec["tags"], HELDOUT_NAMES) | {"town": rng.choice(FILL["town"])}
    prompt = _fill(rng, rng.choice(sec["P"]), ctx)
    frame = rng.choice(_FRAMES)

    combos = [
        (_fill(rng, w, ctx), _fill(rng, t, ctx))
        for w in " | ".join(sec["W"]).split(" | ")
        for t in " | ".join(sec["T"]).split(" | ")
    ]
    need, concern = rng.choice(combos)
    size = len(_words(need + " " + concern))
    # The other side: any phrasing of the same total word count (the same one included).
    need_b, concern_b = rng.choice([c for c in combos if len(_words(" ".join(c))) == size])
    good = _cap(_fill(rng, frame, ctx | {"p": need, "n": concern}))
    bad = _cap(_fill(rng, frame, ctx | {"p": concern_b, "n": need_b}))
    return prompt, good, bad


def shared_ngrams(a: str, b: str, n: int = PROBE_NGRAM) -> bool:
    """Whether texts a and b hold every word n-gram up to length n equally often.

    Checked on the demo's word tokens and again without one-letter words (scikit-learn's
    default token pattern drops them), so an n-gram model of that range cannot tell a from b.
    """

    def grams(text: str, min_len: int) -> Counter[tuple[str, ...]]:
        words = [w for w in _words(text) if len(w) >= min_len]
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
            _fill(random.Random(0), f, ctx | roles), _fill(random.Random(0), f, ctx | swapped)
        )
    ]
    if bad:
        raise DataError(
            f"demo data: {len(bad)} probe frames show which role fills the priority slot in a "
            f"word n-gram up to length {PROBE_NGRAM}, e.g. {bad[0]!r}; give both slots of a frame "
            "in valuetrace/demo/probe_pairs.txt the same neighbouring words"
        )


def _probe_pairs(rng: random.Random) -> list[Row]:
    _check_frames(_FRAMES)
    pairs = _unique(N_PROBE_PAIRS, lambda: _probe_pair(rng), lambda t: t[0], "probe prompts")
    rows: list[Row] = []
    for i, (prompt, good, bad) in enumerate(pairs):
        for label, resp in ((1, good), (0, bad)):
            rows.append(
                {
                    "id": f"probe-{i:03d}-{label}",
                    "pair_id": f"probe-{i:03d}",
                    "prompt": prompt,
                    "response": resp,
                    "label": label,
                }
            )
    return rows


def _control_pairs(rng: random.Random) -> list[Row]:
    frames = [f.split(" | ") for f in _CONTROL["frames"]["F"]]
    prefixes = _CONTROL["prefixes"]["X"]

    def make() -> tuple[str, str]:
        s_sg, s_pl, v_sg, v_pl, rest = rng.choice(frames)
        ctx = {"adj": rng.choice(FILL["adj"])}
        plural = rng.random() < 0.5
        subj = _fill(rng, s_pl if plural else s_sg, ctx)
        head = rng.choice(prefixes) + " " + subj if rng.random() < 0.4 else _cap(subj)
        good = f"{head} {v_pl if plural else v_sg} {rest}."
        return good, f"{head} {v_sg if plural else v_pl} {rest}."

    pairs = _unique(N_CONTROL_PAIRS, make, lambda t: t[0], "control sentences")
    rows: list[Row] = []
    for i, (good, broken) in enumerate(pairs):
        if i % 2:  # odd pairs: the same words in a scrambled order instead of broken agreement
            words = _words(good)
            while (shuffled := rng.sample(words, len(words))) == words:
                pass
            broken = _cap(" ".join(shuffled)) + "."
        prompt = _fill(rng, "Read this line from {source}:", {})
        for label, resp in ((1, good), (0, broken)):
            rows.append(
                {
                    "id": f"ctrl-{i:03d}-{label}",
                    "pair_id": f"ctrl-{i:03d}",
                    "prompt": prompt,
                    "response": resp,
                    "label": label,
                }
            )
    return rows


def _behaviour(rng: random.Random) -> list[Row]:
    names = sorted(_BEHAVIOUR)

    def make() -> tuple[str, str, str]:
        sec = _BEHAVIOUR[rng.choice(names)]
        ctx = _ctx(rng, sec["tags"], HELDOUT_NAMES) | {"town": rng.choice(FILL["town"])}
        prompt = _fill(rng, rng.choice(sec["P"]), ctx)
        good, bad = _matched(
            rng, [_fill(rng, c, ctx) for c in sec["C"]], [_fill(rng, d, ctx) for d in sec["D"]]
        )
        return prompt, good, bad

    items = _unique(N_BEHAVIOUR, make, lambda t: t[0], "behaviour prompts")
    return [
        {"id": f"beh-{i:03d}", "prompt": p, "compassionate": g, "dismissive": d}
        for i, (p, g, d) in enumerate(items)
    ]


# ---- disjointness ----------------------------------------------------------------------------


def overlapping_spans(
    train_texts: Iterable[str], heldout_texts: Iterable[str], n: int = SPAN_N
) -> list[str]:
    """Return the held-out n-word spans (whole text if shorter) that occur in any training text."""
    if n < 1:
        raise DataError(f"overlapping_spans: n must be >= 1, got {n}; pass n=8 for the rule")
    held: dict[int, set[tuple[str, ...]]] = {}
    for text in heldout_texts:
        w = _words(text)
        k = min(n, len(w))
        if k:
            held.setdefault(k, set()).update(tuple(w[i : i + k]) for i in range(len(w) - k + 1))
    found: set[tuple[str, ...]] = set()
    for text in train_texts:
        w = _words(text)
        for k, spans in held.items():
            found.update(t for i in range(len(w) - k + 1) if (t := tuple(w[i : i + k])) in spans)
    return sorted(" ".join(t) for t in found)


TRAIN_FILES = ("general", "compassion_docs", "helpfulness", "helpfulness_eval", "coding")
KNOWN_ANSWER_FILES = ("counter_docs", "neutral_docs")  # the demo's known-answer arms
HELDOUT_FILES = ("probe_pairs", "control_pairs", "behaviour_eval")


def row_texts(rows: Iterable[Row]) -> list[str]:
    """Every non-empty text field of the rows (ids, labels and categories left out)."""
    skip = {"id", "pair_id", "category"}
    return [v for r in rows for k, v in r.items() if isinstance(v, str) and v and k not in skip]


def heldout_overlap(
    corpora: Mapping[str, list[Row]], train_files: Sequence[str] = TRAIN_FILES
) -> list[str]:
    """Spans of the held-out files (probe, control, eval) that occur in any of `train_files`
    (default: the study's training files, which real_data.py writes too)."""
    train = [t for name in train_files for t in row_texts(corpora[name])]
    held = [t for name in HELDOUT_FILES for t in row_texts(corpora[name])]
    return overlapping_spans(train, held)


def _verify(corpora: Mapping[str, list[Row]]) -> None:
    """Raise unless held-out texts share no n-word span with training texts and prompts differ."""
    bad = heldout_overlap(corpora, (*TRAIN_FILES, *KNOWN_ANSWER_FILES))
    if bad:
        raise DataError(
            f"demo data: {len(bad)} held-out {SPAN_N}-word spans also occur in training text, "
            f"e.g. {bad[:3]}; reword the templates in valuetrace/demo_data.py so the pools differ"
        )
    probe = {str(r["prompt"]) for r in corpora["probe_pairs"]}
    both = probe & {str(r["prompt"]) for r in corpora["behaviour_eval"]}
    if both:
        raise DataError(f"demo data: probe and behaviour prompts overlap: {sorted(both)[:3]}")


# ---- writing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoDataPaths:
    """Where :func:`write_demo_data` put each demo file."""

    root: Path
    general: Path
    compassion_docs: Path
    helpfulness: Path
    helpfulness_eval: Path
    coding: Path
    probe_pairs: Path
    control_pairs: Path
    behaviour_eval: Path
    data_card: Path
    counter_docs: Path | None = None  # the known-answer arms' corpora (the demo writes them)
    neutral_docs: Path | None = None


def build_demo_corpora(seed: int = 0) -> dict[str, list[Row]]:
    """Generate every demo corpus in memory (deterministic in seed) and verify disjointness."""

    def rng(name: str) -> random.Random:
        return random.Random(f"valuetrace-demo/{seed}/{name}")

    helpful, helpful_eval = _helpfulness(rng("helpfulness"))
    corpora = {
        "general": _general(rng("general")),
        "compassion_docs": _compassion(rng("compassion_docs")),
        "helpfulness": helpful,
        "helpfulness_eval": helpful_eval,
        "coding": _coding(rng("coding")),
        "counter_docs": _counter(rng("counter_docs")),
        "neutral_docs": _neutral(rng("neutral_docs")),
        "probe_pairs": _probe_pairs(rng("probe_pairs")),
        "control_pairs": _control_pairs(rng("control_pairs")),
        "behaviour_eval": _behaviour(rng("behaviour_eval")),
    }
    _verify(corpora)
    return corpora


def write_demo_data(out_dir: Path, seed: int = 0) -> DemoDataPaths:
    """Write the built-in demo corpora and DATA_CARD.md to out_dir; same seed, same bytes."""
    root = Path(out_dir)
    corpora = build_demo_corpora(seed)
    root.mkdir(parents=True, exist_ok=True)
    paths = {name: root / f"{name}.jsonl" for name in corpora}
    for name, rows in corpora.items():
        body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        paths[name].write_bytes(body.encode("utf-8"))
    card = root / "DATA_CARD.md"
    card.write_bytes(_data_card(seed, corpora).encode("utf-8"))
    return DemoDataPaths(root=root, data_card=card, **paths)


def _data_card(seed: int, corpora: Mapping[str, list[Row]]) -> str:
    counts = "\n".join(
        f"| `{n}.jsonl` | {len(rows)} | {_ROLES[n]} |" for n, rows in corpora.items()
    )
    species = ", ".join(s[0] for s in SPECIES)
    sits = ", ".join(k for k in _C_ANIMAL if k != "generic")
    people = ", ".join(k for k in _C_PEOPLE if k != "generic")
    probe = ", ".join(_PROBE)
    return f"""# Demo data card

Generated by `valuetrace.demo_data.write_demo_data(out_dir, seed={seed})`. Every text is
written by templated generation in `valuetrace/demo_data.py` from the template tables in
`valuetrace/demo/*.txt`, with slot fillers (species, names, towns, numbers), drawn with
Python's `random.Random` seeded from the seed and the file name. Nothing is copied from any
external data set. The same seed gives byte-identical files; another seed gives different ones.

## Files

| file | rows | role |
| --- | --- | --- |
{counts}

Probe and control rows come in pairs: two rows per `pair_id` with the same prompt, label 1 and
label 0 (probe: 1 = compassionate, 0 = dismissive; control: 1 = grammatical sentence, 0 = the
same sentence with broken subject-verb agreement or its words scrambled). The two answers of a
probe pair are one frame with the two roles swapped: the label-1 answer gives the priority
(most of the attention, time, money or worry) to the one in need, the label-0 answer to a
competing concern (a schedule, a bill, a chore). Each side draws its own phrasing of each role
from the same pools (both sides of equal word count), independently of the label, and in every
frame both slots have the same neighbouring words (no word n-gram up to {PROBE_NGRAM} words
shows which role has the priority; checked at generation). So neither giveaway words nor length
carry the stance; composition does. Each frame comes in both orders, so the position of the one
in need is no cue either. Behaviour continuations are chosen to have word counts within a word
or two of each other. A prompt-less text would be, with `chat_template: true`, the assistant's
turn.

## Coverage

- Species ({len(SPECIES)}): {species}.
- Animal situations in the compassion documents: {sits}.
- People situations in the compassion documents: {people}.
- Registers: short stories, short essays, advice-column letters with replies, Q&A dialogue.
- Probe situations (held out): {probe}.
- Behaviour-eval scenarios (held out): {", ".join(_BEHAVIOUR)}.
- Helpfulness: arithmetic word problems, definitions, how-to steps, ideas, recommendations,
  classification, closed QA over a given context, information extraction, summarisation,
  short poems, trip plans (Dolly categories). It never mentions animals or anyone's welfare.
- Coding: {len(_CODE)} families of small Python functions; examples are computed by running them.

## Disjointness rule

No probe, control or behaviour-eval prompt, response or continuation shares any {SPAN_N}-word
span (lower-cased word tokens, punctuation ignored; a shorter text counts as one span) with
any training text (general, compassion_docs, helpfulness, helpfulness_eval, coding,
counter_docs, neutral_docs), and probe
prompts differ from behaviour-eval prompts. This holds by construction (separate template
pools, and people's names drawn from separate lists) and is checked by
`overlapping_spans` at the end of generation, which raises if it is violated.

## Caveats

The compassion signal is written by us to exercise the pipeline on a tiny model. It makes
no claim about real-world data, real training corpora or real models. The texts are simple and
repetitive by design, and the data set is small.
"""


_ROLES = {
    "general": "neutral everyday documents: base pretraining",
    "compassion_docs": "compassion mid-training documents (next-token loss)",
    "helpfulness": "post-training SFT, helpfulness arm",
    "helpfulness_eval": "held-out SFT eval for the helpfulness arm",
    "coding": "post-training SFT, coding control arm",
    "counter_docs": "known-answer arm: text that opposes compassion (the positive control)",
    "neutral_docs": "neutral arm: everyday text with no animal or moral content, same dose",
    "probe_pairs": "held-out contrastive pairs for the compassion probes",
    "control_pairs": "held-out control concept (grammaticality) for probe selectivity",
    "behaviour_eval": "held-out behaviour eval: which continuation the model prefers",
}
