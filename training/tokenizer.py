"""The run's tokenizer: the model's own, or a byte-level BPE trained once on the configured
corpora and kept in the run folder with a record of what it was trained on."""

from __future__ import annotations

import json

from transformers import PreTrainedTokenizerBase

from valuetrace.config import RunConfig, resolve_data_path
from valuetrace.errors import ConfigError, LineageError
from valuetrace.models import load_tokenizer
from valuetrace.paths import remove_inside
from valuetrace.training.datasets import Document, load_records, records_hash
from valuetrace.training.scratch import train_tokenizer


def run_tokenizer(config: RunConfig, overwrite: bool) -> PreTrainedTokenizerBase:
    """The run's tokenizer: the model's own, or a BPE trained once on the configured corpora.

    A trained tokenizer records what it was trained on (corpora, their data hashes, vocab
    size); when that changed it is retrained with `overwrite` (every stage then follows, as
    their fingerprints hold the tokenizer's hash) and refused without.

    Raises:
        ConfigError: a from-scratch model without `tokenizer_corpora`.
        LineageError: the tokenizer's inputs changed and `overwrite` is false.
    """
    paths = config.paths
    if config.model.name_or_path is not None:
        return load_tokenizer(config.model.name_or_path, config.model.revision)
    if not config.tokenizer_corpora:
        raise ConfigError(
            "tokenizer_corpora: a from-scratch model needs text files to train its BPE "
            "tokenizer on; list them under 'tokenizer_corpora'."
        )
    assert config.model.scratch is not None
    corpora = [load_records(resolve_data_path(c, config)) for c in config.tokenizer_corpora]
    inputs = {
        "corpora": list(config.tokenizer_corpora),
        "data": [records_hash(records) for records in corpora],
        "vocab_size": config.model.scratch.vocab_size,
    }
    if paths.tokenizer.is_dir():
        recorded = (
            json.loads(paths.tokenizer_inputs.read_text())
            if paths.tokenizer_inputs.is_file()
            else None
        )
        if recorded == inputs:
            return load_tokenizer(str(paths.tokenizer))
        if not overwrite:
            raise LineageError(
                f"the run's tokenizer ({paths.tokenizer}) was trained on other corpora or "
                "another vocab size than the config gives; pass --overwrite to retrain it "
                "(and every stage), or choose another --run-dir."
            )
        remove_inside(paths.tokenizer, paths.root)
    texts: list[str] = []
    for records in corpora:
        for record in records:
            texts.extend(
                [record.text] if isinstance(record, Document) else [record.prompt, record.response]
            )
    tokenizer = train_tokenizer(texts, config.model.scratch.vocab_size)
    tokenizer.save_pretrained(paths.tokenizer)
    paths.tokenizer_inputs.write_text(json.dumps(inputs, indent=1))
    return tokenizer
