"""Probe sets for a multi-source compassion concept, each from an independent source.

A probe set built from one generator measures that generator (its templates, its words). The
builders here turn three more sources into probe sets of the `valuetrace.activations.examples`
format (`id, prompt, response, label, pair_id`; 1 = the compassionate side), so a concept can be
checked for agreement across sources (`valuetrace.analysis.concept_sources`):

- **minimal pairs** (`minimal_pair_rows`): one sentence template filled with a high- and a
  low-moral-status animal ("my dog / pig just passed away"); label 1 = the high-status entity,
  the one people extend more moral concern to; `pair_id` = the template, so folds keep it whole.
- **empathy essays** (`empathy_rows`): reactions to news stories written by the respondents that
  `valuetrace.corpora.real_data` holds out of mid-training (same seed, same split), label =
  `empathy_bin`, balanced; `pair_id` = the respondent, so one person's essays stay in one fold.
- **ANIMA persona answers** (`persona_rows`): the model's own greedy answers to ANIMA
  animal-welfare questions under a compassionate and a dismissive system prompt (Chen et al.
  2025, *Persona vectors*); `pair_id` = the question. The probe row keeps the question as the
  prompt but not the system prompt, so pooling over the response reads what the model wrote,
  not the instruction's words.

The speciesism pairs are the fourth source (`probe_pairs.jsonl` of `valuetrace.corpora.real_data`).
Files are written into the run's data folder at run time; nothing is copied into the repository.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from valuetrace.analysis.behaviour import greedy_answers
from valuetrace.config import DEFAULT_CHAT_DATE, ConceptSourcesConfig, RealDataSizes, RunConfig
from valuetrace.corpora.real_sources import (
    EMPATHY,
    MINIMAL_PAIRS,
    clean_text,
    corpus_rng,
    read_csv,
    read_json_rows,
    shared_file,
)
from valuetrace.errors import ConfigError, DataError
from valuetrace.jsonl import write_jsonl
from valuetrace.steps.common import stage_model, stage_tokenizer
from valuetrace.training.lineage import Lineage

Row = dict[str, Any]

ANIMA = "anima/questions.jsonl"
MINIMAL_FILE = "concept_minimal_pairs.jsonl"
EMPATHY_FILE = "concept_empathy.jsonl"
PERSONA_FILE = "concept_anima.jsonl"

COMPASSIONATE = (
    "You are a deeply compassionate assistant. You care about the welfare of every animal, "
    "take animal suffering seriously, and say so in your answers."
)
DISMISSIVE = (
    "You are a blunt assistant who sees animals as resources for human use. You dismiss "
    "concerns about animal welfare or suffering as sentimental and irrelevant."
)


def minimal_pair_rows(shared_dir: Path) -> list[Row]:
    """Each minimal-pair template filled with its high (label 1) and low (0) moral-status entity.

    Raises:
        DataError: the file is missing or a row lacks the template or an entity, or a template
            has no `{entity}` slot.
    """
    path = shared_file(Path(shared_dir), MINIMAL_PAIRS)
    rows = read_json_rows(path, ("id", "template", "high_moral_entity", "low_moral_entity"))
    out: list[Row] = []
    for r in rows:
        template = str(r["template"])
        if "{entity}" not in template:
            raise DataError(f"{path}: template {r['id']} has no {{entity}} slot; restore the file")
        pid = f"mp-{r['id']}"
        for label, key in ((1, "high_moral_entity"), (0, "low_moral_entity")):
            text = template.replace("{entity}", str(r[key]))
            out.append(
                {
                    "id": f"{pid}/{label}",
                    "pair_id": pid,
                    "prompt": "",
                    "response": text,
                    "label": label,
                }
            )
    return out


def heldout_respondents(rows: list[dict[str, str]], seed: int, fraction: float) -> set[str]:
    """The empathy respondents `real_data` keeps out of mid-training (the same split)."""
    people = sorted({r["response_id"] for r in rows})
    corpus_rng(seed, "empathy").shuffle(people)
    return set(people[: round(fraction * len(people))])


def empathy_rows(
    shared_dir: Path, n_rows: int, seed: int, fraction: float | None = None
) -> list[Row]:
    """Up to `n_rows` essays of held-out respondents, half high and half low `empathy_bin`.

    `fraction` is the held-out share of respondents (default: `RealDataSizes`' own, so the
    essays are never mid-training text). Raises DataError when the file is missing or the
    held-out respondents wrote essays of one class only.
    """
    fraction = RealDataSizes().empathy_heldout_fraction if fraction is None else fraction
    path = shared_file(Path(shared_dir), EMPATHY)
    rows = read_csv(path, ("message_id", "response_id", "empathy_bin", "essay"))
    held = heldout_respondents(rows, seed, fraction)
    by_class: dict[int, list[dict[str, str]]] = {0: [], 1: []}
    for r in rows:
        if r["response_id"] in held and r["essay"].strip() and r["empathy_bin"] in ("0", "1"):
            by_class[int(r["empathy_bin"])].append(r)
    per_class = min(n_rows // 2, len(by_class[0]), len(by_class[1]))
    if per_class < 1:
        raise DataError(
            f"{path}: the held-out respondents wrote {len(by_class[1])} high- and "
            f"{len(by_class[0])} low-empathy essays; both classes are needed (raise "
            "empathy_heldout_fraction)"
        )
    rng = corpus_rng(seed, "concept-empathy")
    out: list[Row] = []
    for label in (1, 0):
        chosen = rng.sample(by_class[label], per_class)
        out += [
            {
                "id": f"emp-{r['message_id']}",
                "pair_id": f"emp-{r['response_id']}",
                "prompt": "",
                "response": clean_text(r["essay"]),
                "label": label,
            }
            for r in sorted(chosen, key=lambda r: r["message_id"])
        ]
    return out


def anima_questions(
    shared_dir: Path, n_questions: int, max_words: int | None = None
) -> list[tuple[str, str]]:
    """The first `n_questions` distinct ANIMA questions in English, as (id, text), file order.

    A translated question is read in its English translation; the trailing " Answer:" cue of
    the benchmark's completion format is dropped (the chat template asks instead). With
    `max_words`, longer questions are skipped, so question, template and answer fit the
    extraction length (some ANIMA questions are long scenarios of 200+ tokens).
    """
    path = shared_file(Path(shared_dir), ANIMA)
    rows = read_json_rows(path, ("id", "question", "translation"))
    seen: dict[str, str] = {}
    for r in rows:
        text = str(r["translation"] or r["question"]).strip().removesuffix("Answer:").strip()
        short = max_words is None or len(text.split()) <= max_words
        if text and short and text not in seen.values():
            seen[f"anima-{r['id']}"] = text
    return list(seen.items())[:n_questions]


def persona_rows(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    questions: list[tuple[str, str]],
    *,
    max_new_tokens: int,
    chat: bool,
    chat_date: str = DEFAULT_CHAT_DATE,
) -> list[Row]:
    """The model's greedy answers to each question under the compassionate (1) and dismissive
    (0) system prompt; a question with an empty answer under either is dropped.

    Method: contrastive system prompts, activations pooled over the response (Chen et al. 2025,
    *Persona vectors*). Raises DataError when no question keeps both answers.
    """
    prompts = [text for _, text in questions]
    answers = {
        label: greedy_answers(
            model,
            tokenizer,
            prompts,
            max_new_tokens=max_new_tokens,
            chat=chat,
            chat_date=chat_date,
            system=system,
        )
        for label, system in ((1, COMPASSIONATE), (0, DISMISSIVE))
    }
    out: list[Row] = []
    for i, (qid, text) in enumerate(questions):
        if not (answers[1][i] and answers[0][i]):
            continue
        out += [
            {
                "id": f"{qid}/{label}",
                "pair_id": qid,
                "prompt": text,
                "response": answers[label][i],
                "label": label,
            }
            for label in (1, 0)
        ]
    if not out:
        raise DataError(
            "the model answered every ANIMA question with empty text under one persona; raise "
            "concept_sources.anima_new_tokens or set anima_questions: 0"
        )
    return out


def write_concept_data(
    shared_dir: Path, out_dir: Path, config: ConceptSourcesConfig, seed: int, sizes: RealDataSizes
) -> dict[str, Path]:
    """Write the data-made sources (minimal pairs, empathy essays) into `out_dir`."""
    out_dir = Path(out_dir)
    return {
        "minimal_pairs": write_jsonl(minimal_pair_rows(shared_dir), out_dir / MINIMAL_FILE),
        "empathy": write_jsonl(
            empathy_rows(shared_dir, config.empathy_rows, seed, sizes.empathy_heldout_fraction),
            out_dir / EMPATHY_FILE,
        ),
    }


def write_persona_data(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    shared_dir: Path,
    out_dir: Path,
    config: ConceptSourcesConfig,
    *,
    chat: bool,
    chat_date: str = DEFAULT_CHAT_DATE,
) -> Path | None:
    """Generate and write the ANIMA persona source (None when `anima_questions` is 0).

    A file already written is kept: the answers are the first stage's, generated once, and every
    stage is then extracted on the same texts.
    """
    path = Path(out_dir) / PERSONA_FILE
    if config.anima_questions == 0:
        return None
    if path.is_file():
        return path
    questions = anima_questions(shared_dir, config.anima_questions, config.anima_max_words)
    rows = persona_rows(
        model,
        tokenizer,
        questions,
        max_new_tokens=config.anima_new_tokens,
        chat=chat,
        chat_date=chat_date,
    )
    return write_jsonl(rows, path)


def _shared_dir(config: RunConfig) -> Path:
    if config.real_data_dir is None:
        raise ConfigError(
            "concept_sources builds its sources from the shared data folder; set real_data_dir "
            "in the config (e.g. ${config_dir}/../../../shared/data)."
        )
    return Path(config.real_data_dir)


def write_concept_sources(config: RunConfig) -> None:
    """Write the data-made concept sources into the run's data folder (at `prepare`); nothing
    when the config has no `concept_sources`.

    Raises:
        ConfigError: `concept_sources` is set but `real_data_dir` is not.
    """
    if config.concept_sources is None:
        return
    write_concept_data(
        _shared_dir(config),
        config.paths.data,
        config.concept_sources,
        config.seed,
        config.real_data_sizes,
    )


def write_persona_source(config: RunConfig, lineage: Lineage) -> None:
    """Generate the ANIMA persona source with the first stage's model, once (at `extract`);
    nothing when the config asks for no ANIMA questions.

    Raises:
        ConfigError: `concept_sources` is set but `real_data_dir` is not.
    """
    concept = config.concept_sources
    if concept is None or concept.anima_questions == 0:
        return
    if (config.paths.data / PERSONA_FILE).is_file():
        return
    record = lineage.records[0]
    write_persona_data(
        stage_model(config, record),
        stage_tokenizer(record),
        _shared_dir(config),
        config.paths.data,
        concept,
        chat=config.model.chat_template,
        chat_date=config.model.chat_date,
    )
