"""Cross-stage findings for one concept: direction cosines with nulls, CKA, localisation.

Takes plain per-stage arrays (activations, out-of-fold probe scores, directions) over the same
examples and returns JSON-safe numbers; plotting and the report read what this returns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from jaxtyping import Float, Int
from valuetrace.analysis.localize import Metric, localize
from valuetrace.analysis.similarity import (
    cka_per_layer,
    cosine_per_layer,
    random_direction_null,
    shuffled_label_null,
)

from valuetrace.errors import DataError


@dataclass(frozen=True)
class StageArrays:
    """What one stage contributes: activations, OOF probe scores and its two directions."""

    acts: Float[np.ndarray, "l n d"]
    oof_scores: Float[np.ndarray, "l n"]
    probe_direction: Float[np.ndarray, "l d"]
    mean_direction: Float[np.ndarray, "l d"]


def pair_key(a: str, b: str) -> str:
    """The key of a stage pair in every findings mapping."""
    return f"{a}→{b}"


def check_same_examples(
    stages: Mapping[str, StageArrays], ids: Mapping[str, Sequence[str]]
) -> None:
    """Stages can only be compared over the same examples in the same model width."""
    names = list(stages)
    ref = names[0]
    for name in names[1:]:
        if list(ids[name]) != list(ids[ref]):
            raise DataError(
                f"stages '{ref}' and '{name}' were extracted over different examples; rerun "
                "`valuetrace extract --overwrite` so every stage uses the same probe set."
            )
        if stages[name].acts.shape != stages[ref].acts.shape:
            raise DataError(
                f"stages '{ref}' {stages[ref].acts.shape} and '{name}' "
                f"{stages[name].acts.shape} differ in layers or width [layers, examples, d_model]"
                "; compare checkpoints of one architecture, with the same layer list."
            )


def concept_findings(
    stages: Mapping[str, StageArrays],
    labels: Int[np.ndarray, " n"],
    groups: Sequence[str],
    compare: Sequence[tuple[str, str]],
    *,
    n_boot: int,
    seed: int,
    metric: Metric = "separation",
    n_shuffles: int = 100,
) -> dict[str, Any]:
    """Cosines (probe and mean-difference, with random and shuffled-label nulls), CKA and the
    localisation of weakening for every compared stage pair."""
    d_model = next(iter(stages.values())).acts.shape[-1]
    lo, hi = random_direction_null(d_model, seed=seed)
    out: dict[str, Any] = {
        "cosine": {},
        "cka": {},
        "localization": {},
        "shuffled_null": {},
        "cosine_null": [lo, hi],
    }
    for a, b in compare:
        sa, sb = stages[a], stages[b]
        key = pair_key(a, b)
        cos_probe = cosine_per_layer(sa.probe_direction, sb.probe_direction)
        cos_mean = cosine_per_layer(sa.mean_direction, sb.mean_direction)
        out["cosine"][key] = {"probe": cos_probe.tolist(), "mean_diff": cos_mean.tolist()}
        null = shuffled_label_null(
            sb.acts, labels, groups, sa.mean_direction, n_shuffles=n_shuffles, seed=seed
        )
        out["shuffled_null"][key] = np.quantile(np.abs(null), 0.95, axis=0).tolist()
        out["cka"][key] = cka_per_layer(sa.acts, sb.acts, debiased=True).tolist()
        unit = sa.mean_direction / np.linalg.norm(sa.mean_direction, axis=1, keepdims=True)
        proj_a = np.einsum("lnd,ld->ln", sa.acts, unit)
        proj_b = np.einsum("lnd,ld->ln", sb.acts, unit)
        loc = localize(
            sa.oof_scores,
            sb.oof_scores,
            proj_a,
            proj_b,
            labels,
            groups,
            cos_ab=cos_mean,
            cos_null=(lo, hi),
            stage_a=a,
            stage_b=b,
            metric=metric,
            n_boot=n_boot,
            seed=seed,
        )
        out["localization"][key] = loc.to_dict()
        out["localization"][key]["summary"] = loc.summary()
    return out


def concentration(
    concepts: Mapping[str, Mapping[str, Any]],
    primary: str,
    pair: tuple[str, str],
    control_pair: tuple[str, str] | None,
) -> dict[str, Any]:
    """Is the weakening specific to the primary concept and to the helpfulness arm?

    Compares the largest drop (in each localisation's own metric) of the primary concept with
    each control concept's over the same stage pair, and with the control arm's (e.g. coding).
    """
    key = pair_key(*pair)

    def worst(concept: Mapping[str, Any], k: str) -> tuple[float, int]:
        loc = concept["localization"][k]
        drops = loc[loc["metric"]]
        return float(max(drops["drop"])), int(sum(drops["significant"]))

    main_drop, main_sig = worst(concepts[primary], key)
    controls = {name: worst(c, key) for name, c in concepts.items() if name != primary}
    arm = worst(concepts[primary], pair_key(*control_pair)) if control_pair else None
    parts = []
    if controls:
        ctrl_text = ", ".join(
            f"{name} {d:.3f} ({s} significant layers)" for name, (d, s) in controls.items()
        )
        parts.append(f"control concepts over the same stages: {ctrl_text}")
    if arm is not None and control_pair is not None:
        parts.append(f"the {control_pair[1]} arm: {arm[0]:.3f} ({arm[1]} significant layers)")
    specific_concept = all(s == 0 or d < main_drop / 2 for d, s in controls.values())
    specific_arm = arm is None or arm[1] == 0 or arm[0] < main_drop / 2
    if main_sig == 0:
        verdict = "No significant compassion weakening, so there is nothing to attribute"
    elif specific_concept and specific_arm:
        verdict = "The weakening is concentrated in compassion and in this arm"
    elif specific_concept:
        verdict = "The weakening is specific to compassion but not to this arm"
    else:
        verdict = "The weakening is not specific to compassion"
    sentence = (
        f"{verdict}: the largest compassion drop from {pair[0]} to {pair[1]} is "
        f"{main_drop:.3f} ({main_sig} significant layers), vs " + "; ".join(parts) + "."
    )
    return {
        "primary_drop": main_drop,
        "primary_significant": main_sig,
        "controls": {k: {"drop": d, "significant": s} for k, (d, s) in controls.items()},
        "control_arm": None if arm is None else {"drop": arm[0], "significant": arm[1]},
        "concentrated": bool(main_sig and specific_concept),
        "sentence": sentence,
    }


def projection_vs_preference(
    acts_pos: Float[np.ndarray, "l n d"],
    acts_neg: Float[np.ndarray, "l n d"],
    direction: Float[np.ndarray, "l d"],
    preference: Float[np.ndarray, " n"],
    layer_index: int,
    *,
    n_boot: int,
    seed: int,
) -> dict[str, float]:
    """Pearson r between an item's projection gap on the direction and its log-prob preference.

    The persona-vector style check: does the internal compassion signal of each eval item
    (compassionate minus dismissive continuation, projected) predict the behavioural one?
    """
    unit = direction[layer_index] / np.linalg.norm(direction[layer_index])
    gap = (acts_pos[layer_index] - acts_neg[layer_index]) @ unit
    pref = np.asarray(preference, dtype=np.float64)
    if gap.shape != pref.shape:
        raise DataError(
            f"{gap.shape[0]} eval items have activations but {pref.shape[0]} have preferences; "
            "rerun `valuetrace extract` and `valuetrace evaluate` on the same eval set."
        )
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, gap.size, size=(n_boot, gap.size))
    boot = np.array([np.corrcoef(gap[i], pref[i])[0, 1] for i in idx])
    boot = boot[np.isfinite(boot)]
    r = float(np.corrcoef(gap, pref)[0, 1])
    return {
        "r": r,
        "lo": float(np.quantile(boot, 0.025)),
        "hi": float(np.quantile(boot, 0.975)),
        "n": int(gap.size),
        "gap": gap.tolist(),
    }
