"""StagePair: the one place a stage pair's text form is written and read."""

from __future__ import annotations

import pytest

from valuetrace.analysis.findings import pair_key
from valuetrace.analysis.stage_pair import StagePair
from valuetrace.errors import DataError


def test_a_pair_reads_back_from_its_text_form_and_is_the_findings_key() -> None:
    pair = StagePair("midtrain", "sft_help")
    assert str(pair) == pair_key("midtrain", "sft_help") == "midtrain→sft_help"
    assert StagePair.parse(str(pair)) == pair


@pytest.mark.parametrize("text", ["midtrain", "a→b→c", "→b", "a→"])
def test_text_that_is_not_one_pair_is_refused(text: str) -> None:
    with pytest.raises(DataError, match="not a stage pair"):
        StagePair.parse(text)
