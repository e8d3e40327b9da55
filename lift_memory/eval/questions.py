"""A held-out question set for judging answer quality: short documents with facts, asked as natural questions.

Each :class:`QADocument` is a few paragraphs of original prose with facts in it, padded with haystack text
to a length in the model's tokens, so that the document exceeds a capped window and most facts lie outside
the part a prompt can show. Its questions are phrased the way a user would ask them, never the way the
offline task generator phrases its training questions (a test checks that no question appears verbatim among
the training tasks), and are scored with the NIAH keyword scorer.

Every benchmark that judges quality on a real model uses this set, so their figures are comparable. This
module knows documents and scoring; it calls only the public ``LiftMemory`` API.
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
