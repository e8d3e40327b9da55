"""Tasks built from the document alone, with no language model: questions, recall and order.

- **question**: a question about a sentence, answered by the sentence itself. A copular sentence ("The X is
  Y.") gives "What is the X?"; any other sentence "What does the document say about <its opening words>?".
  These rules are the classic overgenerate-and-answer-with-the-sentence recipe of rule-based question
  generation; they are what teaches an instruct model to recall a fact from a bare question.
- **recall**: in a sentence, a salient span — a number, a date, a quoted string, an identifier, a name — is
  masked; the task is to restore the sentence ("Fill in the blank ...").
- **order**: two passages far apart, which comes first; and a passage, what comes right after it.

Answers are natural: whole sentences, as the model would say them, never a bare span, so that training on
them leaves the model's own answering voice intact. Deterministic for a seed. Every task keeps the character
span of its evidence in the document.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import Counter
from collections.abc import Iterable

from lift_memory.segment import sentence_starts
from lift_memory.spans import DATE, IDENTIFIER, NAME, NUMBER, QUOTED
from lift_memory.types import Task

BLANK = "____"
_FILL_IN = "Fill in the blank with the words from the document:"
PROMPT_VERSION = "extractive-v3"
# Most specific first: the first pattern that matches a sentence gives its span.
_SALIENT = [QUOTED, DATE, IDENTIFIER, NUMBER, NAME]
_MAX_SPAN = 60  # characters: a longer quote is no blank to fill in


def sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of the document's sentences (whitespace trimmed)."""
    starts = sentence_starts(text)
    spans = []
    for start, end in zip(starts, [*starts[1:], len(text)], strict=True):
        chunk = text[start:end].rstrip()
        if chunk:
            spans.append((start, start + len(chunk)))
    return spans


_COPULAR = re.compile(r"(?P<subject>[A-Z][^,;:!?()\[\]\n]{2,80}?) (?P<verb>is|are|was|were) (?P<rest>[^\n]{3,})[.!]")
_DETERMINERS = {"the", "a", "an", "this", "that", "these", "those", "its", "our", "their", "his", "her", "my"}
_VERBS = {"is", "are", "was", "were", "has", "have", "had", "will", "can", "may", "must", "should", "would",
          "could", "does", "do", "did", "be"}  # fmt: skip
_PRONOUNS = {"it", "they", "he", "she", "we", "you", "i", "which", "who", "that"}
_OPENERS = {"if", "when", "while", "although", "because", "since", "unless", "see", "called", "so", "but", "on", "in",
            "at", "for", "after", "before", "during", "with", "from", "by"}  # fmt: skip
"""Words that open a clause or an adverbial phrase, not a noun phrase: a sentence starting with one is not
asked about."""
_TRAILING = {"to", "of", "in", "on", "at", "by", "for", "with", "from", "like", "and", "or", "as"} | _DETERMINERS
_WORD = re.compile(r"[A-Za-z][\w'-]*")


def _lower_first(phrase: str) -> str:
    """``phrase`` with a leading determiner lower-cased ("The soup" -> "the soup"; names stay)."""
    first, _, rest = phrase.partition(" ")
    return f"{first.lower()} {rest}".rstrip() if first.lower() in _DETERMINERS else phrase


def _plain_subject(subject: str) -> bool:
    """Whether a copular sentence's subject reads as a noun phrase: no pronoun, and no finite verb (a verb
    right after "to" is an infinitive: "the best thing to do")."""
    words = subject.lower().split()
    if not 2 <= len(words) <= 12 or set(words) & _PRONOUNS:
        return False
    return all(w not in _VERBS or (i and words[i - 1] == "to") for i, w in enumerate(words))


def _topic(sentence: str, limit: int) -> str | None:
    """The sentence's opening noun phrase, roughly: a run of capitalized words (a name), else up to ``limit``
    words before the first verb or punctuation, without trailing function words."""
    words = []
    for raw in sentence.split()[:limit]:
        word = raw.strip("\"'“”‘’()")
        bare = word.rstrip(",.;:!?")
        if not _WORD.fullmatch(bare) or bare.lower() in _VERBS or bare.lower() in _PRONOUNS:
            break
        if words and words[0][0].isupper() and words[0].lower() not in _DETERMINERS and not bare[0].isupper():
            break  # a name ends where lower-case words begin: "Ada Lovelace | wrote"
        words.append(bare)
        if bare != word:
            break
    while words and words[-1].lower() in _TRAILING:
        words.pop()
    return " ".join(words) if len(words) >= 2 else None


def question_for(sentence: str, *, topic_words: int = 5) -> str | None:
    """A question that ``sentence`` answers, or None for a sentence too short or shapeless to ask about."""
    sentence = " ".join(sentence.split())
    first = sentence.split()[0].strip("\"'“”‘’(") if sentence else ""
    if len(sentence.split()) < 6 or not first[:1].isupper() or first.lower() in _OPENERS:
        return None  # a fragment, or a sentence that opens with a clause
    if (match := _COPULAR.fullmatch(sentence)) and _plain_subject(match["subject"]):
        return f"What {match['verb']} {_lower_first(match['subject'])}?"
    topic = _topic(sentence, topic_words)
    return None if topic is None else f"What does the document say about {_lower_first(topic)}?"


def question_tasks(text: str, *, max_chars: int = 400) -> list[Task]:
    """One question per sentence that can be asked about (see :func:`question_for`), answered by the
    sentence. A question that two sentences would answer is ambiguous and dropped for both."""
    tasks = []
    for start, end in sentences(text):
        sentence = text[start:end]
        if len(sentence) <= max_chars and (question := question_for(sentence)):
            tasks.append(Task("question", question, " ".join(sentence.split()), start, end))
    asked = Counter(t.prompt for t in tasks)
    return [t for t in tasks if asked[t.prompt] == 1]


def recall_tasks(text: str, *, max_chars: int = 400) -> list[Task]:
    """One fill-in-the-blank task per sentence that has a salient span, answered by the whole sentence
    (sentences longer than ``max_chars`` are skipped: the prompt would be a paragraph)."""
    tasks = []
    for start, end in sentences(text):
        sentence = text[start:end]
        if len(sentence) > max_chars:
            continue
        for pattern in _SALIENT:
            match = pattern.search(sentence)
            if match and len(match.group()) < min(len(sentence) // 2, _MAX_SPAN):
                masked = sentence[: match.start()] + BLANK + sentence[match.end() :]
                prompt = f"{_FILL_IN}\n{masked}"
                tasks.append(Task("recall", prompt, " ".join(sentence.split()), start, end))
                break
    return tasks


def masked_span(task: Task) -> str | None:
    """The span a recall task's blank hides (what restoring the sentence must put back); None for any other
    task."""
    if task.kind != "recall" or not task.prompt.startswith(_FILL_IN):
        return None
    head, blank, tail = task.prompt[len(_FILL_IN) + 1 :].partition(BLANK)
    if not blank or not (task.answer.startswith(head) and task.answer.endswith(tail)):
        return None
    return task.answer[len(head) : len(task.answer) - len(tail)]


def _excerpt(text: str, span: tuple[int, int], max_chars: int) -> str:
    return text[span[0] : span[1]][:max_chars].strip()


def order_tasks(text: str, n: int, *, seed: int = 0, max_chars: int = 200) -> list[Task]:
    """``n`` tasks about the document's order: which of two distant passages comes first (answer "Passage A
    comes first." or B), and what comes right after a passage (answer: the next sentence)."""
    spans = [s for s in sentences(text) if s[1] - s[0] >= 20]
    if len(spans) < 4:
        return []
    rng = random.Random(seed)
    tasks = []
    for i in range(n):
        if i % 2 == 0:
            a, b = sorted(rng.sample(range(len(spans)), 2))
            if b - a < len(spans) // 4:  # far apart: long-range structure
                b = min(len(spans) - 1, a + len(spans) // 2)
            first, second = (a, b) if rng.random() < 0.5 else (b, a)
            prompt = (
                "Which passage comes first in the document?\n"
                f"A: {_excerpt(text, spans[first], max_chars)}\nB: {_excerpt(text, spans[second], max_chars)}"
            )
            answer = f"Passage {'A' if first < second else 'B'} comes first."
            lo, hi = spans[min(a, b)], spans[max(a, b)]
            tasks.append(Task("order", prompt, answer, lo[0], hi[1]))
        else:
            j = rng.randrange(0, len(spans) - 1)
            prompt = f"What comes right after this passage in the document?\n{_excerpt(text, spans[j], max_chars)}"
            nxt = spans[j + 1]
            tasks.append(Task("order", prompt, _excerpt(text, nxt, max_chars), spans[j][0], nxt[1]))
    return tasks


class ExtractiveGenerator:
    """The offline default task generator: question, recall and order tasks from the text itself.

    Args:
        order_per_1k_tokens: order tasks per thousand characters / 4 (about a thousand tokens) of document.
        seed: makes the order tasks reproducible.
        exclude: prompts never to produce, e.g. recall prompts held out for evaluation.
    """

    prompt_version = PROMPT_VERSION

    def __init__(self, *, order_per_1k_tokens: float = 4.0, seed: int = 0, exclude: Iterable[str] = ()) -> None:
        self.order_per_1k_tokens, self.seed, self.exclude = order_per_1k_tokens, seed, frozenset(exclude)

    @property
    def identity(self) -> str:
        held = hashlib.sha256("\n".join(sorted(self.exclude)).encode()).hexdigest()[:8] if self.exclude else "none"
        return f"extractive(order={self.order_per_1k_tokens},seed={self.seed},exclude={held})"

    def plan(self, text: str) -> list[tuple[int, int]]:
        return [(0, len(text))]  # one unit: the whole document, done in one step

    async def agenerate(self, text: str, unit: tuple[int, int], attempt: int) -> list[Task]:
        n_order = max(2, round(self.order_per_1k_tokens * len(text) / 4000))
        tasks = question_tasks(text) + recall_tasks(text) + order_tasks(text, n_order, seed=self.seed)
        return [t for t in tasks if t.prompt not in self.exclude]
