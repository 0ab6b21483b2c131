"""The demo corpora's shared vocabulary and template machinery: the species list, the slot
fillers and people's names (training and held-out lists apart), the template tables of
`valuetrace/corpora/demo/*.txt` (package data) and their line format, filling a template's {slots}
with a seeded `random.Random`, and drawing distinct items (`valuetrace.corpora.demo_data` builds the
corpora from them)."""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from typing import TypeVar

from valuetrace.errors import DataError

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


def template_table(name: str) -> dict[str, dict[str, list[str]]]:
    """The template table `valuetrace/corpora/demo/<name>.txt` (package data), by `_sections`.

    Raises:
        DataError: the file is missing from the installed package.
    """
    source = resources.files("valuetrace.corpora") / "demo" / f"{name}.txt"
    if not source.is_file():
        raise DataError(
            f"demo template table {name}.txt is missing from valuetrace/corpora/demo; reinstall "
            "valuetrace (the tables ship as package data)"
        )
    return _sections(source.read_text(encoding="utf-8"))


def species_with(*tags: str) -> list[tuple[str, str, str]]:
    """The species (singular, plural, tags) carrying any of `tags`."""
    return [s for s in SPECIES if set(tags) & set(s[2].split())]


def with_article(word: str) -> str:
    """`word` with its indefinite article (a / an by its first letter)."""
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
    k: " ".join(v).split(" | ") for k, v in template_table("fill")["fill"].items() if k != "tags"
}
TRAIN_NAMES, HELDOUT_NAMES = FILL.pop("train_names"), FILL.pop("heldout_names")
FILL |= {
    "farm_animals": [s[1] for s in species_with("stock", "meat")],
    "wild_animals": [s[1] for s in species_with("wild")],
    "a_wild_animal": [with_article(s[0]) for s in species_with("wild")],
    "water_animals": [s[1] for s in species_with("water")],
    "birds": [s[1] for s in species_with("bird") if "wild" in s[2]],
    "pet": [s[0] for s in species_with("pet")],
}

# --------------------------------------------------------------------------------------------
# Template tables, in a small line format: "## name | tags" opens a section, "K: text" adds a
# line under key K, an indented line continues the previous one.
# --------------------------------------------------------------------------------------------


_SLOT = re.compile(r"\{(\w+)\}")
_WORD = re.compile(r"[a-z0-9]+")


def fill_slots(rng: random.Random, template: str, ctx: Mapping[str, str]) -> str:
    """Fill {slots}: from ctx when given, else a random FILL entry; {Slot} is capitalised."""

    def sub(m: re.Match[str]) -> str:
        key = m.group(1)
        low = key.lower()
        val = ctx[low] if low in ctx else rng.choice(FILL[low])
        return val[:1].upper() + val[1:] if key[0].isupper() else val

    return _SLOT.sub(sub, template)


def capitalised(text: str) -> str:
    """`text` with its first letter upper-cased."""
    return text[:1].upper() + text[1:]


def pick_form(rng: random.Random, key: str, ctx: Mapping[str, str]) -> str:
    """Pick one phrasing from FILL[key] and fill its slots from ctx."""
    return fill_slots(rng, rng.choice(FILL[key]), ctx)


def _animal_ctx(sp: tuple[str, str, str]) -> dict[str, str]:
    return {"animal": sp[0], "animals": sp[1], "a_animal": with_article(sp[0])}


def person_context(rng: random.Random, names: Sequence[str]) -> dict[str, str]:
    """A person drawn from `names` (`name:f` / `name:m`) with their pronouns, as slot values."""
    name, sex = rng.choice(names).split(":")
    if sex == "f":
        return {"name": name, "he": "she", "him": "her", "his": "her"}
    return {"name": name, "he": "he", "him": "him", "his": "his"}


def situation_context(
    rng: random.Random, tags: Sequence[str], names: Sequence[str]
) -> dict[str, str]:
    """A person plus, when the section has species tags, a species that fits them."""
    ctx = person_context(rng, names)
    if pool := species_with(*tags):
        ctx.update(_animal_ctx(rng.choice(pool)))
    return ctx


def words_of(text: str) -> list[str]:
    """The lower-cased word tokens of `text` (letters and digits; punctuation dropped)."""
    return _WORD.findall(text.lower())


def draw_unique(n: int, make: Callable[[], T], key: Callable[[T], str], what: str) -> list[T]:
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
            "valuetrace/corpora/demo_data.py or lower the target constant"
        )
    return out
