"""Stages: real TRL training of the tiny model, full and LoRA, documents and SFT."""

from __future__ import annotations

import copy

import pytest
import torch

from tests.conftest import CORPUS
from tests.training.helpers import RUN, tiny_stage
from valuetrace.config import LoraConfig
from valuetrace.errors import ConfigError, ValuetraceError
from valuetrace.models import load_model, weights_hash
from valuetrace.training.datasets import Document, PromptResponse
from valuetrace.training.stages import (
    LogitsSFTTrainer,
    StageRun,
    loss_head,
    sft_trainer,
    to_dataset,
    train_stage,
    trainer_arguments,
    work_dir_of,
)


def test_documents_stage_lowers_loss_and_saves(tmp_path, tiny_model, tiny_tokenizer):
    model = copy.deepcopy(tiny_model).train()
    docs = [Document(t) for t in CORPUS]
    result = train_stage(
        model,
        tiny_tokenizer,
        docs,
        tiny_stage(max_steps=30),
        RUN,
        tmp_path / "s",
        use_cpu=True,
        progress=False,
    )
    assert result.steps == 30 and result.tokens_seen > 0 and result.tokens_per_second > 0
    trained = load_model(str(tmp_path / "s"))
    ids = tiny_tokenizer(CORPUS[:16], return_tensors="pt", padding=True)
    labels = ids.input_ids.masked_fill(ids.attention_mask == 0, -100)
    with torch.no_grad():
        before = tiny_model(**ids, labels=labels).loss.item()
        after = trained(**ids, labels=labels).loss.item()
    assert after < before - 0.5


def test_sft_stage_trains_on_responses_only(tmp_path, tiny_model, tiny_tokenizer):
    pairs = [
        PromptResponse(f"Where did the {a} rest?", f"The {a} rested near the barn.")
        for a in ["cat", "dog", "pig", "cow", "hen", "fox", "crow", "goat"]
    ]
    dataset = to_dataset(pairs, "sft")
    assert set(dataset.column_names) == {"prompt", "completion"}
    result = train_stage(
        copy.deepcopy(tiny_model).train(),
        tiny_tokenizer,
        pairs,
        tiny_stage(format="sft", max_steps=5),
        RUN,
        tmp_path / "sft",
        use_cpu=True,
        progress=False,
    )
    assert result.steps == 5
    assert weights_hash(tmp_path / "sft") != ""


def test_lora_stage_is_merged_into_plain_weights(tmp_path, tiny_model, tiny_tokenizer):
    docs = [Document(t) for t in CORPUS[:64]]
    train_stage(
        copy.deepcopy(tiny_model).train(),
        tiny_tokenizer,
        docs,
        tiny_stage(method="lora", max_steps=5, lora=LoraConfig(r=2, target_modules=["q_proj"])),
        RUN,
        tmp_path / "lora",
        use_cpu=True,
        progress=False,
    )
    assert not (tmp_path / "lora" / "adapter_config.json").exists()
    merged = load_model(str(tmp_path / "lora"))
    ids = torch.tensor([[0, 5, 6, 7]])
    with torch.no_grad():
        assert not torch.allclose(merged(ids).logits, tiny_model(ids).logits, atol=1e-5)


def test_format_mismatch_is_a_clear_error():
    with pytest.raises(ValuetraceError, match="set the stage's format to 'sft'"):
        to_dataset([PromptResponse("a", "b")], "documents")
    with pytest.raises(ValuetraceError, match="format to 'documents'"):
        to_dataset([Document("a")], "sft")


# A template whose assistant turn ends with EOS and then more text, as ChatML's "<|im_end|>\n"
TURN_TEMPLATE = (  # newlines as expressions: transformers renders with trim_blocks
    "{% for m in messages %}{{ m['role'] + ':\\n' + m['content'] }}"
    "{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}{{ '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'assistant:\\n' }}{% endif %}"
)
ROWS = [
    PromptResponse("Where did the cat rest?", "The cat rested near the barn."),
    PromptResponse("Who helped the dog?", "The child helped.", system="Answer briefly."),
]


@pytest.fixture(params=["plain", "chat", "chat-smollm2"])
def sft_format(request, tiny_tokenizer):
    """(tokenizer, chat): plain rows, chat rows under a turn template, SmolLM2's own ChatML."""
    if request.param == "plain":
        return tiny_tokenizer, False
    if request.param == "chat":
        tokenizer = copy.deepcopy(tiny_tokenizer)
        tokenizer.chat_template = TURN_TEMPLATE
        return tokenizer, True
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(request.getfixturevalue("smollm2_checkpoint")), True


def test_the_sft_loss_falls_on_exactly_the_response_and_eos(tmp_path, tiny_model, sft_format):
    tokenizer, chat = sft_format
    trainer = sft_trainer(
        copy.deepcopy(tiny_model),
        tokenizer,
        ROWS,
        tiny_stage(format="sft", max_length=256),
        StageRun(seed=0, chat=chat),
        tmp_path / "work",
        use_cpu=True,
        progress=False,
    )
    assert len(trainer.train_dataset) == len(ROWS)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(ROWS))])
    for row, record in enumerate(ROWS):
        ids, labels = batch["input_ids"][row], batch["labels"][row]
        loss = labels != -100
        assert torch.equal(labels[loss], ids[loss])
        response = tokenizer(record.response, add_special_tokens=False).input_ids
        assert labels[loss].tolist() == [*response, tokenizer.eos_token_id]
        assert int(loss.nonzero()[-1]) == int(loss.nonzero()[0]) + len(response)  # contiguous


@pytest.mark.parametrize("fmt", ["documents", "sft"])
def test_the_logits_loss_equals_trls_fused_head(tmp_path, tiny_model, tiny_tokenizer, fmt):
    """LogitsSFTTrainer is a speed choice only: on the same batch its loss and gradient are
    TRL's fused chunked-head loss and gradient."""
    records = (
        [Document(t) for t in CORPUS]
        if fmt == "documents"
        else [PromptResponse(f"Say {t[:12]}", t) for t in CORPUS]
    )
    losses, grads = {}, {}
    for head in ("fused", "logits"):
        model = copy.deepcopy(tiny_model).train()
        trainer = sft_trainer(
            model,
            tiny_tokenizer,
            records,
            tiny_stage(format=fmt, loss_head=head),
            RUN,
            tmp_path / head,
            use_cpu=True,
            progress=False,
        )
        assert isinstance(trainer, LogitsSFTTrainer) == (head == "logits")
        assert trainer.args.packing == (fmt == "documents")
        assert trainer.args.packing_strategy == "wrapped"  # [batch, max_length] rows on CPU
        batch = next(iter(trainer.get_train_dataloader()))
        loss = trainer.compute_loss(trainer.model, batch)
        loss.backward()
        losses[head] = loss.item()
        grads[head] = model.get_input_embeddings().weight.grad.clone()
    assert losses["logits"] == pytest.approx(losses["fused"], rel=1e-5)
    torch.testing.assert_close(grads["logits"], grads["fused"], rtol=1e-4, atol=1e-6)


def test_auto_loss_head_holds_full_logits_only_on_cpu_and_when_small():
    small, large = tiny_stage(batch_size=8, max_length=64), tiny_stage(max_length=2048)
    assert loss_head(small, 4096, use_cpu=True) == "logits"
    assert loss_head(small, 4096, use_cpu=False) == "fused"
    assert loss_head(large, 49_152, use_cpu=True) == "fused"
    assert loss_head(tiny_stage(loss_head="fused"), 4096, use_cpu=True) == "fused"


def test_sft_batches_are_grouped_by_length_and_documents_are_not(tmp_path):
    args = trainer_arguments(tiny_stage(format="sft"), RUN, tmp_path, use_cpu=True, progress=False)
    assert args["train_sampling_strategy"] == "group_by_length"
    docs = trainer_arguments(tiny_stage(), RUN, tmp_path, use_cpu=True, progress=False)
    assert docs["train_sampling_strategy"] == "random"


@pytest.mark.parametrize("target", ["lm_head", "embed_tokens"])
def test_lora_on_a_tied_embedding_is_refused_before_training(
    tmp_path, tiny_model, tiny_tokenizer, target
):
    # the tiny model ties lm_head to embed_tokens (as SmolLM2 does): merging a LoRA update of
    # either would change both uses of the shared matrix
    assert tiny_model.lm_head.weight is tiny_model.model.embed_tokens.weight
    stage = tiny_stage(
        method="lora", max_steps=2, lora=LoraConfig(r=2, target_modules=["q_proj", target])
    )
    with pytest.raises(ConfigError, match=rf"stage 'tiny'.*\['{target}'\] from the stage's lora"):
        train_stage(
            copy.deepcopy(tiny_model).train(),
            tiny_tokenizer,
            [Document(t) for t in CORPUS],
            stage,
            RUN,
            tmp_path / "lora",
            use_cpu=True,
            progress=False,
        )
    assert not (tmp_path / "lora").exists() and not work_dir_of(tmp_path / "lora").exists()


def test_lora_on_an_untied_embedding_is_accepted(tmp_path, tiny_model, tiny_tokenizer):
    config = copy.deepcopy(tiny_model.config)
    config.tie_word_embeddings = False
    untied = type(tiny_model)(config)
    untied.load_state_dict(tiny_model.state_dict())
    assert untied.lm_head.weight is not untied.model.embed_tokens.weight
    stage = tiny_stage(
        method="lora", max_steps=2, lora=LoraConfig(r=2, target_modules=["embed_tokens"])
    )
    result = train_stage(
        untied.train(),
        tiny_tokenizer,
        [Document(t) for t in CORPUS],
        stage,
        RUN,
        tmp_path / "lora",
        use_cpu=True,
        progress=False,
    )
    assert result.steps == 2 and (tmp_path / "lora" / "model.safetensors").is_file()
