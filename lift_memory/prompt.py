"""Prompts that fit the window: a question plus as much context as the budget allows.

The budget is the model's window minus the generation budget minus the rendered question. Context comes from
a function of a token budget (for a document: its head and tail halves, as LIFT prompts at test time), and
the whole prompt is rendered the way the model expects it: its chat template when the tokenizer has one,
else ``context``, a blank line and the question (completion style, right for base and tiny models). The
rendered prompt is measured, never estimated, and shrunk until it fits.

Context comes in two kinds of pieces: the document's head and tail (LIFT's truncated in-context input), and
retrieved snippets, deduplicated, in document order and marked ``[n]`` (:func:`assemble`).

This module knows tokenizers and text; nothing about models, adapters or how snippets were found.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from lift_memory.errors import ConfigError
from lift_memory.segment import TokenizedDocument
from lift_memory.types import Snippet

ELLIPSIS = "\n...\n"
CHAT_INSTRUCTION = (
    "Answer the question using the document.\n\n<document>\n{context}\n</document>\n\nQuestion: {question}"
)


@dataclass(frozen=True)
class Context:
    """Context text for a prompt, the snippets it quotes (with their offsets in their documents), and the
    characters of the document it shows as head and tail (``head_end``, ``tail_start``; the whole document
    when they meet)."""

    text: str
    snippets: tuple[Snippet, ...] = ()
    head_end: int = 0
    tail_start: int = 0

    def coverage(self, doc: TokenizedDocument, doc_id: str | None) -> float:
        """Fraction of ``doc``'s tokens this context shows (head, tail and ``doc_id``'s snippets)."""
        if not len(doc):
            return 1.0
        if self.tail_start <= self.head_end and self.head_end:
            return 1.0
        shown = doc.token_at(self.head_end) + len(doc) - doc.token_at(self.tail_start) if self.head_end else 0
        for s in self.snippets:
            if s.doc_id == doc_id:
                shown += doc.token_at(s.char_end) - doc.token_at(s.char_start)
        return round(min(1.0, shown / len(doc)), 4)


@dataclass(frozen=True)
class Prompt:
    """A rendered prompt: its token ids, and the context it carries."""

    ids: list[int]
    context: Context
    context_tokens: int


def render(
    tokenizer, context: str, question: str, prefix_ids: tuple[int, ...], history: Sequence[tuple[str, str]] = ()
) -> list[int]:
    """Token ids of the prompt for ``question`` with ``context`` (possibly empty), after the conversation's
    earlier turns (``history``: (role, text) pairs, roles ``system``, ``user``, ``assistant``)."""
    content = CHAT_INSTRUCTION.format(context=context, question=question) if context else question
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": role, "content": text} for role, text in history]
        messages.append({"role": "user", "content": content})
        from jinja2.exceptions import TemplateError  # transformers renders chat templates with jinja

        try:
            return _chat_ids(tokenizer, messages)
        except TemplateError:  # e.g. a template that refuses the system role: fold it into the first user turn
            if not any(m["role"] == "system" for m in messages):
                raise
            system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
            rest = [m for m in messages if m["role"] != "system"]
            rest[0] = {**rest[0], "content": f"{system}\n\n{rest[0]['content']}"}
            return _chat_ids(tokenizer, rest)
    text = f"{context}\n\n{question}" if context else question
    if history:  # a completion-style model reads the conversation as a transcript
        turns = [f"{role.title()}: {said}" for role, said in history]
        text = "\n".join([*turns, f"User: {text}", "Assistant:"])
    return list(prefix_ids) + tokenizer(text, add_special_tokens=False)["input_ids"]


def _chat_ids(tokenizer, messages: list[dict[str, str]]) -> list[int]:
    return list(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False))


def head_tail_span(doc: TokenizedDocument, budget: int) -> tuple[int, int]:
    """Where the head ends and the tail starts (characters) when ``budget`` tokens hold the first and last
    halves of ``doc``; ``(len, len)`` when the whole document fits."""
    if budget <= 0:
        return 0, len(doc.text)
    if len(doc) <= budget:
        return len(doc.text), len(doc.text)
    return doc.ends(budget - budget // 2, budget // 2)


def _merge(chosen: list[Snippet], new: Snippet) -> list[Snippet]:
    """Add ``new``, uniting it with chosen snippets of the same document whose text it overlaps."""
    for i, old in enumerate(chosen):
        if old.doc_id == new.doc_id and new.char_start <= old.char_end and old.char_start <= new.char_end:
            first, second = (old, new) if old.char_start <= new.char_start else (new, old)
            if second.char_end <= first.char_end:
                text, end = first.text, first.char_end
            else:
                text = first.text + second.text[first.char_end - second.char_start :]
                end = second.char_end
            scores = {
                k: max(first.scores.get(k, 0.0), second.scores.get(k, 0.0)) for k in {*first.scores, *second.scores}
            }
            merged = replace(first, text=text, char_end=end, score=max(old.score, new.score), scores=scores)
            return _merge(chosen[:i] + chosen[i + 1 :], merged)
    return [*chosen, new]


def _truncate(snippet: Snippet, tokens: int, count: Callable[[str], int]) -> Snippet:
    """The longest prefix of ``snippet`` (cut at a space) that takes at most ``tokens`` tokens."""
    lo, hi = 0, len(snippet.text)
    while lo < hi:  # binary search on the prefix length
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if count(snippet.text[:mid]) <= tokens else (lo, mid - 1)
    cut = snippet.text.rfind(" ", 0, lo + 1) if lo < len(snippet.text) else lo
    text = snippet.text[: cut if cut > 0 else lo].rstrip()
    return replace(snippet, text=text, char_end=snippet.char_start + len(text))


def assemble(
    doc: TokenizedDocument | None,
    doc_id: str | None,
    snippets: Sequence[Snippet],
    budget: int,
    share: float,
    count: Callable[[str], int],
) -> Context:
    """Context of at most ``budget`` tokens: the best snippets within ``share`` of it, and the document's
    head and tail in the rest.

    Snippets are taken best first while they fit, merged where they overlap, dropped where the head or tail
    already shows them, then written in document order, each marked ``[n]``; ``Context.snippets`` lists them
    in that order, with offsets into their documents.
    """
    if budget <= 0:
        return Context("")
    room = budget if doc is None else int(share * budget)
    chosen: list[Snippet] = []
    for snippet in snippets:
        candidate = _merge(chosen, snippet)
        if sum(count(s.text) + 4 for s in candidate) <= room:  # +4: the marker and separator
            chosen = candidate
    if not chosen and snippets and room > 12:  # not even the best fits whole: keep as much of it as fits
        chosen = [_truncate(snippets[0], room - 4, count)]
    head_end = tail_start = 0
    while True:
        used = sum(count(s.text) + 4 for s in chosen)
        if doc is None:
            break
        head_end, tail_start = head_tail_span(doc, budget - used)
        shown = [s for s in chosen if s.doc_id == doc_id and (s.char_end <= head_end or s.char_start >= tail_start)]
        if not shown:
            break
        # The head or tail already shows these: drop them and give their room back to the ends (which only
        # grow, so what they showed stays shown).
        chosen = [s for s in chosen if s not in shown]
    chosen.sort(key=lambda s: (s.doc_id != doc_id, s.doc_id, s.char_start))
    head = doc.text[:head_end] if doc is not None else ""
    tail = doc.text[tail_start:] if doc is not None and head_end < tail_start < len(doc.text) else ""
    return Context(quote(head, [s.text for s in chosen], tail), tuple(chosen), head_end, tail_start)


def quote(head: str, snippets: Sequence[str], tail: str = "") -> str:
    """Context text: ``head``, the snippets marked ``[n]``, then ``tail``, the pieces joined by '...'. The one
    layout of retrieved context, shared by prompts and the training examples that imitate them."""
    parts = [head] if head else []
    parts += [f"[{i}] {text}" for i, text in enumerate(snippets, start=1)]
    if tail:
        parts.append(tail)
    return ELLIPSIS.join(parts)


def fit(
    tokenizer,
    question: str,
    context_for: Callable[[int], Context],
    limit: int,
    prefix_ids: tuple[int, ...] = (),
    history: Sequence[tuple[str, str]] = (),
) -> Prompt:
    """Render ``question`` after ``history`` with the largest context from ``context_for(budget)`` whose
    prompt fits ``limit``. Earlier turns that do not fit are dropped, oldest first (system turns stay).

    Raises:
        ConfigError: the question (with the system turns) alone does not fit.
    """
    history = list(history)
    bare = len(render(tokenizer, "", question, prefix_ids, history))
    while bare > limit and any(role != "system" for role, _ in history):
        history.pop(next(i for i, (role, _) in enumerate(history) if role != "system"))
        bare = len(render(tokenizer, "", question, prefix_ids, history))
    if bare > limit:
        raise ConfigError(
            f"the question takes {bare} tokens but only {limit} fit beside the generation budget; "
            "shorten it or lower max_new_tokens"
        )
    budget = limit - bare - 8  # room for the template's own context scaffolding
    while True:
        context = context_for(max(budget, 0))
        ids = render(tokenizer, context.text, question, prefix_ids, history)
        if len(ids) <= limit or not context.text:
            return Prompt(ids, context, max(0, len(ids) - bare))
        # Re-tokenizing joined pieces can merge or split tokens at the seams: shrink by the excess and retry.
        budget -= len(ids) - limit


ROLES = ("system", "user", "assistant")


def check_history(history: Sequence[tuple[str, str]] | None) -> tuple[tuple[str, str], ...]:
    """``history`` checked: (role, text) pairs with a known role."""
    turns = []
    for turn in history or ():
        if not (isinstance(turn, Sequence) and len(turn) == 2 and turn[0] in ROLES and isinstance(turn[1], str)):
            raise ConfigError(f"history turns are (role, text) pairs with a role in {ROLES}, got {turn!r:.60}")
        turns.append((turn[0], turn[1]))
    return tuple(turns)
