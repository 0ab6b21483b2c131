"""Control labels for selectivity (after Hewitt & Liang, 2019): labels a probe should not decode.

Why: a probe's accuracy means little until it is compared with the same probe on a task that
the representation cannot encode. With contrastive pairs the natural control shuffles labels
within each group: every pair keeps one 1 and one 0, but which member gets the 1 is random, so
the control labels carry no information about the text beyond the pairing itself.
"""

import numpy as np
from jaxtyping import Int, Shaped


def control_labels(
    labels: Int[np.ndarray, " n"], groups: Shaped[np.ndarray, " n"], seed: int
) -> Int[np.ndarray, " n"]:
    """Labels permuted within each group; singleton groups are permuted among themselves.

    The singleton permutation keeps the overall class balance; a group whose members share one
    label keeps it (there is nothing to shuffle).
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    _, inverse, sizes = np.unique(groups, return_inverse=True, return_counts=True)
    # Sort members by (group, random key): a random order inside each group, groups contiguous.
    order = np.lexsort((rng.random(len(labels)), inverse))
    by_group = np.argsort(inverse, kind="stable")
    control = np.empty_like(labels)
    control[by_group] = labels[order]
    singletons = np.flatnonzero(sizes[inverse] == 1)
    control[singletons] = labels[rng.permutation(singletons)]
    return control
