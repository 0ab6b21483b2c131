"""Prompt formatting shared by training, extraction and evaluation, so all see the same text.

Two formats: the plain `### Instruction / ### Response` template, or the tokenizer's own chat
template (`chat=True`).
"""

from __future__ import annotations

from collections.abc import Sequence

from transformers import PreTrainedTokenizerBase

from valuetrace.errors import DataError


def format_prompt(
    prompt: str, tokenizer: PreTrainedTokenizerBase, *, chat: bool, system: str | None = None
) -> str:
    """The exact text an SFT model saw before its response, so eval prompts match training."""
    if not chat:
        return plain_prompt(prompt, system)
    if not tokenizer.chat_template:
        raise DataError(
            "chat=True but the tokenizer has no chat template; use chat=False (the plain "
            "### Instruction/### Response format) or a tokenizer with a chat template"
        )
    text = tokenizer.apply_chat_template(
        chat_messages(prompt, system), tokenize=False, add_generation_prompt=True
    )
    return str(text)


def format_prompts(
    prompts: Sequence[str], tokenizer: PreTrainedTokenizerBase, *, chat: bool
) -> list[str]:
    """`format_prompt` for each prompt; an empty prompt (a plain-text example) stays empty."""
    return [format_prompt(p, tokenizer, chat=chat) if p else "" for p in prompts]


def plain_prompt(prompt: str, system: str | None) -> str:
    """The template-free prompt: optional system block, instruction, then the response header."""
    header = f"### System:\n{system}\n\n" if system else ""
    return f"{header}### Instruction:\n{prompt}\n\n### Response:\n"


def chat_messages(prompt: str, system: str | None) -> list[dict[str, str]]:
    """The chat-format prompt: optional system message, then the user turn."""
    head = [{"role": "system", "content": system}] if system else []
    return [*head, {"role": "user", "content": prompt}]
