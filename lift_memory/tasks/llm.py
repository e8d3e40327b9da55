"""Question-answer tasks written by a language model, validated against the document.

LIFT v3 (arXiv 2412.13626's successor) asks a model, for every part of a document, for QA pairs about its
last part given the text before it. Here the document is cut into units of about ``unit_chars`` characters
(whole sentences); each prompt shows up to ``context_chars`` of preceding text plus the unit, fitted to the
writer's window in its own tokens (tiktoken, offline-safe), and asks for ``per_unit`` pairs as JSON, each with
a verbatim evidence quote. A reply is parsed into pydantic models; pairs with empty fields or evidence that is
not in the document are dropped (and counted by the pipeline); a reply with no usable pair raises
:class:`~lift_memory.tasks.pipeline.GenerationRejected`, which the pipeline retries — sampling instead of
greedy decoding, because a greedy retry repeats the same failure.

Two writers: :class:`ChatModelGenerator` for any chat model with ``ainvoke``/``invoke`` (every LangChain
``BaseChatModel``, so any served model with a LangChain integration) and :class:`LocalModelGenerator` for a
local Hugging Face model. This module imports neither LangChain nor torch at import time.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from lift_memory.tasks.extractive import sentences
from lift_memory.tasks.pipeline import GenerationRejected
from lift_memory.tokens import TokenCounter
from lift_memory.types import Task

PROMPT_VERSION = "qa-v1"
PROMPT = """Here is the end of a document excerpt.

<excerpt>
{excerpt}
</excerpt>

Write {n} different question-answer pairs about the LAST part of the excerpt (the text after "{marker}").
Each answer must be short and stated in the excerpt. For each pair, quote the sentence that supports the
answer exactly as it appears in the excerpt.

Reply with JSON only: [{{"question": "...", "answer": "...", "evidence": "..."}}]"""
MARKER = ">>>"


class QAPair(BaseModel):
    """One pair as the writer returns it."""

    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    evidence: str = Field(min_length=1)


def parse_pairs(reply: str) -> list[QAPair]:
    """The QA pairs in ``reply``: a JSON list (or ``{"pairs": [...]}``), possibly inside prose or a code fence.

    Raises:
        GenerationRejected: no JSON, or JSON of another shape.
    """
    start = min((i for i in (reply.find("["), reply.find("{")) if i >= 0), default=-1)
    if start < 0:
        raise GenerationRejected("the reply holds no JSON")
    try:
        data, _ = json.JSONDecoder().raw_decode(reply[start:])
    except json.JSONDecodeError as exc:
        raise GenerationRejected(f"invalid JSON: {exc.msg}") from exc
    if isinstance(data, dict):
        data = data.get("pairs", data.get("qa", [data]))
    if not isinstance(data, list):
        raise GenerationRejected("the JSON is not a list of pairs")
    pairs = []
    for item in data:
        try:
            pair = QAPair.model_validate(item)
        except ValidationError:
            continue  # a malformed pair is dropped; the others may be fine
        if pair.question.strip() and pair.answer.strip() and pair.evidence.strip():
            pairs.append(pair)
    if not pairs:
        raise GenerationRejected("no complete question/answer/evidence pair in the reply")
    return pairs


def locate(evidence: str, text: str, near: int = 0) -> tuple[int, int] | None:
    """Character span of ``evidence`` in ``text`` (whitespace-insensitive), the occurrence nearest ``near``."""
    words = evidence.strip().strip('"').split()
    if not words:
        return None
    pattern = re.compile(r"\s+".join(re.escape(w) for w in words))
    matches = list(pattern.finditer(text))
    if not matches:
        return None
    best = min(matches, key=lambda m: abs(m.start() - near))
    return best.start(), best.end()


def ground(pairs: list[QAPair], text: str, unit: tuple[int, int]) -> list[Task]:
    """Tasks for the pairs; a pair whose evidence is not in the document gets evidence offsets -1 (the pipeline
    drops and counts it)."""
    tasks = []
    for pair in pairs:
        span = locate(pair.evidence, text, near=unit[0])
        start, end = span if span is not None else (-1, -1)
        tasks.append(Task("qa", pair.question.strip(), pair.answer.strip(), start, end))
    return tasks


class _QAWriter:
    """Units and prompts shared by the writers."""

    prompt_version = PROMPT_VERSION

    def __init__(
        self, *, per_unit: int, unit_chars: int, context_chars: int, max_prompt_tokens: int, counter: TokenCounter
    ) -> None:
        self.per_unit, self.unit_chars, self.context_chars = per_unit, unit_chars, context_chars
        self.max_prompt_tokens, self.counter = max_prompt_tokens, counter

    def plan(self, text: str) -> list[tuple[int, int]]:
        """Runs of whole sentences of about ``unit_chars`` characters."""
        units, start, end = [], None, 0
        for s, e in sentences(text):
            if start is None:
                start = s
            end = e
            if end - start >= self.unit_chars:
                units.append((start, end))
                start = None
        if start is not None:
            units.append((start, end))
        return units

    def prompt(self, text: str, unit: tuple[int, int]) -> str:
        before = text[max(0, unit[0] - self.context_chars) : unit[0]]
        part = text[unit[0] : unit[1]]
        skeleton = PROMPT.format(excerpt=f"{MARKER}\n{part}", n=self.per_unit, marker=MARKER)
        room = max(0, self.max_prompt_tokens - self.counter.count(skeleton))
        before = self.counter.truncate(before, room, keep="end")  # the text nearest the unit matters most
        return PROMPT.format(excerpt=f"{before}\n{MARKER}\n{part}", n=self.per_unit, marker=MARKER)


class ChatModelGenerator(_QAWriter):
    """QA pairs from a chat model: any object with ``ainvoke(prompt)`` or ``invoke(prompt)`` returning a
    message with ``.content`` (every LangChain ``BaseChatModel``) or a string.

    Example::

        from langchain_openai import ChatOpenAI
        memory = LiftMemory(generator=ChatModelGenerator(ChatOpenAI(model="gpt-4o-mini")))

    Args:
        model: the chat model.
        per_unit: pairs asked for per unit (LIFT v3: 5 to 10 per sentence).
        unit_chars: characters of document per unit.
        context_chars: preceding characters shown for context.
        max_prompt_tokens: the writer's window for the prompt, counted with ``encoding``.
        encoding: tiktoken encoding of the writer (offline: the ``fallback`` tokenizer counts instead).
        fallback: a Hugging Face tokenizer used when the encoding cannot be loaded.
        retry_temperature: sampling temperature for retries (passed to ``ainvoke`` as ``temperature``).
    """

    def __init__(
        self,
        model: Any,
        *,
        per_unit: int = 5,
        unit_chars: int = 1000,
        context_chars: int = 2000,
        max_prompt_tokens: int = 4000,
        encoding: str | None = "cl100k_base",
        fallback: Any = None,
        retry_temperature: float = 0.7,
    ) -> None:
        super().__init__(
            per_unit=per_unit,
            unit_chars=unit_chars,
            context_chars=context_chars,
            max_prompt_tokens=max_prompt_tokens,
            counter=TokenCounter(encoding, fallback),
        )
        self.model, self.retry_temperature = model, retry_temperature

    @property
    def identity(self) -> str:
        name = getattr(self.model, "model_name", None) or getattr(self.model, "model", None) or ""
        return f"chat:{type(self.model).__name__}:{name}:{self.per_unit}x{self.unit_chars}"

    async def agenerate(self, text: str, unit: tuple[int, int], attempt: int) -> list[Task]:
        prompt = self.prompt(text, unit)
        kwargs = {"temperature": self.retry_temperature} if attempt else {}
        if hasattr(self.model, "ainvoke"):
            reply = await self.model.ainvoke(prompt, **kwargs)
        else:
            reply = await asyncio.to_thread(self.model.invoke, prompt, **kwargs)
        content = getattr(reply, "content", reply)
        return ground(parse_pairs(content if isinstance(content, str) else str(content)), text, unit)


class LocalModelGenerator(_QAWriter):
    """QA pairs from a local Hugging Face model (the base model, or another one), decoded greedily first and
    by sampling on retries.

    Args:
        model: a loaded causal LM.
        tokenizer: its tokenizer (its chat template is used when it has one).
        max_new_tokens: budget for the JSON reply.
        Other arguments: as :class:`ChatModelGenerator`; the prompt is counted with ``tokenizer``.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        per_unit: int = 3,
        unit_chars: int = 800,
        context_chars: int = 1200,
        max_prompt_tokens: int | None = None,
        max_new_tokens: int = 256,
        retry_temperature: float = 0.7,
    ) -> None:
        window = getattr(getattr(model, "config", None), "max_position_embeddings", 2048)
        super().__init__(
            per_unit=per_unit,
            unit_chars=unit_chars,
            context_chars=context_chars,
            max_prompt_tokens=max_prompt_tokens or max(64, window - max_new_tokens),
            counter=TokenCounter(None, tokenizer),
        )
        self.model, self.tokenizer = model, tokenizer
        self.max_new_tokens, self.retry_temperature = max_new_tokens, retry_temperature

    @property
    def identity(self) -> str:
        name = getattr(getattr(self.model, "config", None), "_name_or_path", type(self.model).__name__)
        return f"local:{name}:{self.per_unit}x{self.unit_chars}"

    def _write(self, prompt: str, attempt: int) -> str:
        from lift_memory.config import GenerationConfig
        from lift_memory.generate import generate_ids
        from lift_memory.prompt import render

        ids = render(self.tokenizer, "", prompt, tuple(self.tokenizer("", add_special_tokens=True)["input_ids"]))
        config = GenerationConfig(
            max_new_tokens=self.max_new_tokens,
            temperature=self.retry_temperature if attempt else 0.0,
            seed=attempt,
        )
        eos = [self.tokenizer.eos_token_id] if self.tokenizer.eos_token_id is not None else []
        return self.tokenizer.decode(list(generate_ids(self.model, ids, config, eos)), skip_special_tokens=True)

    async def agenerate(self, text: str, unit: tuple[int, int], attempt: int) -> list[Task]:
        reply = await asyncio.to_thread(self._write, self.prompt(text, unit), attempt)
        return ground(parse_pairs(reply), text, unit)
