"""The demo's post-training corpora (prompt/response rows): helpfulness items in the Dolly
schema (arithmetic, definitions, how-to, ideas, recommendations, classification, closed QA,
extraction, summaries, poems), nothing about welfare or suffering, and small Python coding
items in the Alpaca schema whose examples are computed by running them."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping

from valuetrace.corpora.demo_templates import (
    FILL,
    TRAIN_NAMES,
    Row,
    draw_unique,
    fill_slots,
    person_context,
    pick_form,
    template_table,
)

N_HELPFUL = 1000
N_HELPFUL_EVAL = 150
N_CODING = 1000


# ---- helpfulness (Dolly schema), nothing about welfare or suffering --------------------------


_DEFS = [ln.split(" | ") for ln in template_table("definitions")["d"]["T"]]
_HOWTO = template_table("howto")
_IDEAS = template_table("ideas")
_RECS = [ln.split(" | ") for ln in template_table("recommend")["r"]["R"]]
_POEMS = template_table("poems")

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
    ctx = person_context(rng, TRAIN_NAMES) | {"town": rng.choice(FILL["town"])}
    context, cat = "", "open_qa"
    if kind == 0:
        q, fn, ans = rng.choice(_MATH)
        a, b = rng.randint(3, 40), rng.randint(2, 15)
        ctx |= {"a": str(a), "b": str(b), "c": str(a * b + 1), "v": str(fn(a, b))}
        instr, resp, cat = fill_slots(rng, q, ctx), fill_slots(rng, ans, ctx), "general_qa"
    elif kind == 1:
        term, resp = rng.choice(_DEFS)
        instr = pick_form(rng, "q_define", {"t": term})
    elif kind == 2:
        task = rng.choice(sorted(_HOWTO))
        steps = _HOWTO[task]["S"]
        instr, cat = pick_form(rng, "q_howto", {"t": task}), "general_qa"
        if rng.random() < 0.5:
            resp = "\n".join(f"{i}. {s}" for i, s in enumerate(steps, 1))
        else:
            first = ["First", "Next", "Then", "Finally"]
            resp = " ".join(
                f"{w}, {s[0].lower()}{s[1:]}" for w, s in zip(first, steps, strict=False)
            )
    elif kind == 3:
        occ, n = rng.choice(sorted(_IDEAS)), rng.randint(3, 5)
        instr, cat = pick_form(rng, "q_ideas", {"n": str(n), "o": occ}), "brainstorming"
        resp = "\n".join(f"- {i}" for i in rng.sample(_IDEAS[occ]["I"], n))
    elif kind == 4:
        thing, resp = rng.choice(_RECS)
        instr = pick_form(rng, "q_recommend", {"t": thing})
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
        instr, resp = pick_form(rng, "q_poem", {"t": topic}), "\n".join(poem)
        cat = "creative_writing"
    else:
        city, days = rng.choice(FILL["city"]), rng.randint(2, 4)
        instr = f"Plan a {days}-day visit to {city} for someone who likes walking and history."
        acts = [fill_slots(rng, a, {"city": city}) for a in rng.sample(FILL["plan_act"], days)]
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


def helpfulness_rows(rng: random.Random) -> tuple[list[Row], list[Row]]:
    """The helpfulness SFT rows and their held-out eval rows (Dolly schema)."""
    rows = draw_unique(
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


CODE_FAMILIES = [
    (sec["D"][0], names, sec["tags"][0], "\n".join(sec["C"]) + "\n")
    for names, sec in template_table("code").items()
]


def _code_item(rng: random.Random) -> Row:
    """One Alpaca-style coding item; the example output is computed by running the code."""
    desc, names, arg, code = rng.choice(CODE_FAMILIES)
    ctx = {
        "fn": rng.choice(names.split()),
        "k": str(rng.randint(2, 9)),
        "c": rng.choice("aeinost"),
        "sep": rng.choice("-_+/"),
    }
    desc, src = fill_slots(rng, desc, ctx), fill_slots(rng, code, ctx)
    instr = pick_form(rng, "code_form", ctx | {"d": desc})
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


def coding_rows(rng: random.Random) -> list[Row]:
    """The coding SFT rows (Alpaca schema: instruction, input, output)."""
    return draw_unique(
        N_CODING,
        lambda: _code_item(rng),
        lambda r: f"{r['instruction']}\n{r['input']}",
        "coding items",
    )
