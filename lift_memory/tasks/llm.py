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
local Hugging Face model. Where a LangChain model offers structured output (``with_structured_output``: tool
calling or the provider's JSON schema mode), the chat writer asks for :class:`QAList` that way and parses no
text. This module imports neither LangChain nor torch.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from lift_memory.errors import ConfigError, first_line
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


class QAList(BaseModel):
    """Question-answer pairs about the last part of a document excerpt, each with its evidence quoted verbatim."""

    pairs: list[QAPair]


def _complete(pairs: list[QAPair]) -> list[QAPair]:
    """The pairs with no blank field.

    Raises:
        GenerationRejected: none is left.
    """
    pairs = [p for p in pairs if p.question.strip() and p.answer.strip() and p.evidence.strip()]
    if not pairs:
        raise GenerationRejected("no complete question/answer/evidence pair in the reply")
    return pairs


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
            pairs.append(QAPair.model_validate(item))
        except ValidationError:
            continue  # a malformed pair is dropped; the others may be fine
    return _complete(pairs)


def _parse_failure(exc: BaseException) -> bool:
    """Whether ``exc`` says a structured reply did not fit the schema (pydantic's error, or langchain-core's
    ``OutputParserException``, recognized by name: this module does not import LangChain)."""
    return isinstance(exc, ValidationError) or any(c.__name__ == "OutputParserException" for c in type(exc).__mro__)


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
        structured: ask for :class:`QAList` through the model's ``with_structured_output``. None: where the
            model offers it (a ``BaseChatModel`` without tool calling does not), else parse the reply's text;
            True: require it (:class:`~lift_memory.errors.ConfigError` if the model lacks it); False: text.

    Raises:
        ConfigError: ``structured=True`` and the model offers no structured output.
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
        structured: bool | None = None,
    ) -> None:
        super().__init__(
            per_unit=per_unit,
            unit_chars=unit_chars,
            context_chars=context_chars,
            max_prompt_tokens=max_prompt_tokens,
            counter=TokenCounter(encoding, fallback),
        )
        self.model, self.retry_temperature = model, retry_temperature
        self.structured = None if structured is False else _structured(model, required=bool(structured))

    @property
    def identity(self) -> str:
        name = getattr(self.model, "model_name", None) or getattr(self.model, "model", None) or ""
        how = ":structured" if self.structured is not None else ""
        return f"chat:{type(self.model).__name__}:{name}:{self.per_unit}x{self.unit_chars}{how}"

    async def agenerate(self, text: str, unit: tuple[int, int], attempt: int) -> list[Task]:
        prompt = self.prompt(text, unit)
        kwargs = {"temperature": self.retry_temperature} if attempt else {}
        if self.structured is not None:
            return ground(await self._ask_structured(prompt, kwargs), text, unit)
        if hasattr(self.model, "ainvoke"):
            reply = await self.model.ainvoke(prompt, **kwargs)
        else:
            reply = await asyncio.to_thread(self.model.invoke, prompt, **kwargs)
        content = getattr(reply, "content", reply)
        return ground(parse_pairs(content if isinstance(content, str) else str(content)), text, unit)

    async def _ask_structured(self, prompt: str, kwargs: dict) -> list[QAPair]:
        try:
            reply = await self.structured.ainvoke(prompt, **kwargs)
            found = reply if isinstance(reply, QAList) or reply is None else QAList.model_validate(reply)
        except Exception as exc:
            if _parse_failure(exc):
                raise GenerationRejected(f"the structured reply does not fit: {first_line(exc)}") from exc
            raise
        if found is None:
            raise GenerationRejected("the model gave no structured reply")
        return _complete(found.pairs)


def _structured(model: Any, *, required: bool) -> Any:
    """``model.with_structured_output(QAList)``, or None where the model has none (``required``: raise)."""
    try:
        return model.with_structured_output(QAList)
    except (AttributeError, NotImplementedError) as exc:
        if required:
            raise ConfigError(f"{type(model).__name__} offers no structured output: {first_line(exc)}") from None
        return None


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
