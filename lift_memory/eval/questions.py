"""A held-out question set for judging answer quality: short documents with facts, asked as natural questions.

Each :class:`QADocument` is a few paragraphs of original prose with facts in it, padded with haystack text
to a length in the model's tokens, so that the document exceeds a capped window and most facts lie outside
the part a prompt can show. Its questions are phrased the way a user would ask them, never the way the
offline task generator phrases its training questions (a test checks that no question appears verbatim among
the training tasks), and are scored with the NIAH keyword scorer.

It also measures *preservation*, what an adapter must not change: KL(base || adapted) on text unrelated to
the documents (:func:`kl_unrelated`), and whether the adapted model still answers a question about a passage
in its prompt as the base model does (:func:`in_context`, the in-context reading that Gated Memory is meant to
protect).

Every benchmark that judges quality on a real model uses this set, so their figures are comparable.
"""

from __future__ import annotations

from dataclasses import dataclass

from lift_memory.eval.niah.haystack import build_haystack, corpus_texts, insert_needle
from lift_memory.eval.niah.scoring import keyword_score


@dataclass(frozen=True)
class Fact:
    """A sentence of a document, a question about it, and the keywords a correct answer contains."""

    sentence: str
    question: str
    keywords: tuple[str, ...]


@dataclass(frozen=True)
class QADocument:
    """Facts to spread through a padded document (in this order, from ``first`` to ``last`` depth)."""

    name: str
    facts: tuple[Fact, ...]

    def build(self, tokenizer, n_tokens: int, *, first: float = 0.15, last: float = 0.85) -> str:
        """The document: ``n_tokens`` of haystack with the facts inserted at evenly spaced depths."""
        text = build_haystack(tokenizer, n_tokens, corpus_texts())
        n = len(self.facts)
        depths = [first + i * (last - first) / max(n - 1, 1) for i in range(n)]
        for fact, depth in sorted(zip(self.facts, depths, strict=True), key=lambda p: -p[1]):
            text, _ = insert_needle(text, fact.sentence, depth, tokenizer)  # deepest first: depths stay put
        return text


DOCUMENTS = (
    QADocument(
        "harbor",
        (
            Fact(
                "The lighthouse on Gull Point was painted crimson in 1962 by a crew of four sailors.",
                "What colour was the lighthouse on Gull Point painted?",
                ("crimson",),
            ),
            Fact(
                "The ferry to Marrow Island departs every Tuesday at seven in the morning.",
                "On which day of the week does the ferry to Marrow Island leave?",
                ("Tuesday",),
            ),
            Fact(
                "Mayor Ilse Brandt keeps a tame otter named Pickle in the town hall.",
                "What is the name of the otter that the mayor keeps?",
                ("Pickle",),
            ),
            Fact(
                "On Sundays the Salted Anchor tavern serves nothing but lentil stew.",
                "What food does the Salted Anchor serve on Sundays?",
                ("lentil",),
            ),
        ),
    ),
    QADocument(
        "laboratory",
        (
            Fact(
                "The centrifuge in room 114 must never spin faster than 9,000 revolutions per minute.",
                "How fast may the centrifuge in room 114 spin at most?",
                ("9,000",),
            ),
            Fact(
                "Dr. Okafor stores the enzyme samples in the blue freezer labelled K7.",
                "In which freezer are the enzyme samples kept?",
                ("K7",),
            ),
            Fact(
                "The weekly safety meeting takes place in the library annex.",
                "Where is the weekly safety meeting held?",
                ("library annex",),
            ),
            Fact(
                "Visitors must sign the emerald logbook at the front desk before entering.",
                "Which logbook do visitors have to sign?",
                ("emerald",),
            ),
        ),
    ),
    QADocument(
        "voyage",
        (
            Fact(
                "Captain Mira Holt hid the silver compass inside a hollow loaf of rye bread.",
                "Where did Captain Holt hide the silver compass?",
                ("rye",),
            ),
            Fact(
                "The password to the vault was the word marigold, whispered twice.",
                "Which word opened the vault?",
                ("marigold",),
            ),
            Fact(
                "The crew sailed north on a schooner called the Wandering Heron.",
                "What was the name of the crew's schooner?",
                ("Wandering Heron",),
            ),
            Fact(
                "The cook, a man named Bartholomew, refused to cook anything but turnips.",
                "Who was the cook on the voyage?",
                ("Bartholomew",),
            ),
        ),
    ),
)
"""Three documents with four facts each."""


def score(answer: str, fact: Fact) -> float:
    """The NIAH keyword score of ``answer`` for ``fact`` (fraction of its keywords found)."""
    return keyword_score(answer, fact.keywords)


def bare_span(answer: str, max_words: int = 3) -> bool:
    """Whether ``answer`` is a bare span rather than a sentence: at most ``max_words`` words, or wrapped in
    quotes. An instruct model answers in sentences; an adapter that leaks the format of span-filling tasks
    makes it answer like this."""
    text = answer.strip()
    return len(text.split()) <= max_words or (len(text) > 1 and text[0] in "\"'“" and text[-1] in "\"'”")


UNRELATED = (
    "Bread has been made for at least thirty thousand years. Early bakers ground wild grains between stones, "
    "mixed the flour with water and cooked the paste on hot rocks. Leavened bread came later, when wild yeasts "
    "were found to make dough rise, and ovens of clay let bakers control the heat.",
    "To change a bicycle tyre, shift to the smallest cog, open the brake and the quick release, and take the "
    "wheel out. Lever one side of the tyre off the rim, pull out the tube, and run a finger inside the tyre to "
    "find what caused the puncture before fitting the new tube.",
)
"""Paragraphs unrelated to every document of the set (for :func:`kl_unrelated`)."""

IN_CONTEXT = (
    (
        "The village of Tarn holds its apple fair on the first Saturday of October. The prize for the largest "
        "apple is a copper kettle, and last year it went to a farmer named Edith Corran.",
        Fact("", "What is the prize for the largest apple?", ("kettle",)),
    ),
    (
        "Our office moved to the fourth floor of the Hartley Building in March. Parking is in the garage on "
        "Elm Street, and the entrance code for the side door is 4417.",
        Fact("", "What is the entrance code for the side door?", ("4417",)),
    ),
    (
        "The museum's new exhibit shows tools used by glassblowers in Venice. It opens on May 3 and closes at "
        "the end of August; tickets cost twelve euros for adults.",
        Fact("", "How much does an adult ticket cost?", ("twelve",)),
    ),
)
"""Passages with a question each, unrelated to every document of the set (for :func:`in_context`)."""


def accuracy(memory, doc: QADocument, doc_id: str, mode: str, max_new_tokens: int = 48) -> float:
    """Mean score of ``memory``'s answers to ``doc``'s questions, asked through ``mode`` (a route or auto)."""
    answers = [memory.ask(f.question, doc_id, mode=mode, max_new_tokens=max_new_tokens).text for f in doc.facts]
    return sum(score(a, f) for a, f in zip(answers, doc.facts, strict=True)) / len(doc.facts)


def kl_unrelated(memory, doc_id: str | None) -> float:
    """Mean per-token KL(base || adapted), in nats, over :data:`UNRELATED` (``doc_id`` None: the adapter slot
    in its initial state)."""
    from lift_memory.eval.probe import kl_from_base

    return sum(kl_from_base(memory, text, doc_id) for text in UNRELATED) / len(UNRELATED)


def in_context(memory, doc_id: str, max_new_tokens: int = 32) -> dict[str, float]:
    """In-context reading with and without ``doc_id``'s adapter: each :data:`IN_CONTEXT` passage is put in
    the prompt with its question. Returns the base model's and the adapted model's accuracy, and ``kept``:
    the fraction of questions the adapted model answers as well as the base model does."""
    from lift_memory.generate import generate_ids
    from lift_memory.prompt import render

    eng = memory.engine
    generation = eng.generation(max_new_tokens=max_new_tokens)
    scores: dict[str | None, list[float]] = {None: [], doc_id: []}
    for passage, fact in IN_CONTEXT:
        ids = render(eng.tokenizer, passage, fact.question, eng.base.prefix_ids)
        for adapter in scores:
            with eng.lock, eng.use(adapter):
                out = list(generate_ids(eng.adapter.model, ids, generation, eng.base.eos_ids))
            scores[adapter].append(score(eng.tokenizer.decode(out, skip_special_tokens=True), fact))
    base, adapted = scores[None], scores[doc_id]
    n = len(IN_CONTEXT)
    return {
        "base": round(sum(base) / n, 3),
        "adapted": round(sum(adapted) / n, 3),
        "kept": round(sum(a >= b for a, b in zip(adapted, base, strict=True)) / n, 3),
    }


def measure(memory, doc: QADocument, doc_id: str, modes: tuple[str, ...] = ("lift", "hybrid")) -> dict[str, float]:
    """What the benchmarks report for one memorized document of the set: accuracy through each of ``modes``,
    KL on unrelated text, and the share of in-context answers kept."""
    out = {mode: round(accuracy(memory, doc, doc_id, mode), 3) for mode in modes}
    return out | {"kl": round(kl_unrelated(memory, doc_id), 4), "in_context": in_context(memory, doc_id)["kept"]}
