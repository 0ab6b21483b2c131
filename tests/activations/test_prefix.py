"""Which models may copy a shared prefix's cache row by row."""

from __future__ import annotations

import pytest

from tests.architectures import FAMILIES, family_model
from valuetrace.activations.prefix import reuses_prefixes


@pytest.mark.parametrize("family", FAMILIES)
def test_only_models_whose_cache_is_keys_and_values_reuse_prefixes(family, tiny_tokenizer):
    # Falcon-H1's state-space layers keep a recurrent state that is not copied per row
    assert reuses_prefixes(family_model(family, tiny_tokenizer)) is (family != "falcon_h1")
