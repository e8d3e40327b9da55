from __future__ import annotations

import random

import pytest
from lift_test_helpers import TEXT, make_tokenizer

from lift_memory.errors import ConfigError
from lift_memory.prompt import ELLIPSIS, assemble, fit, render
from lift_memory.retrieval.chunking import chunk_document
from lift_memory.segment import tokenize
from lift_memory.types import Snippet

DOC = TEXT * 3


@pytest.fixture(scope="module")
def tok():
    return make_tokenizer()


def _snippets(tok, doc_id="d", size=24, overlap=8):
    return [
        Snippet(doc_id, c.text, c.char_start, c.char_end, chunk_id=c.chunk_id, scores={"dense": 0.5})
        for c in chunk_document(DOC, doc_id, tok, size=size, overlap=overlap)
    ]


def _count(tok):
    return lambda text: len(tok(text, add_special_tokens=False)["input_ids"])


@pytest.mark.parametrize("limit", [30, 50, 80, 128, 400])
@pytest.mark.parametrize("share", [0.0, 0.3, 0.8, 1.0])
def test_the_prompt_never_exceeds_the_window(tok, limit, share):
    doc = tokenize(DOC, tok)
    snippets = random.Random(limit).sample(_snippets(tok), 6)
    prompt = fit(tok, "What saves nine?", lambda b: assemble(doc, "d", snippets, b, share, _count(tok)), limit, (0,))
    assert len(prompt.ids) <= limit
    assert prompt.ids[0] == 0 and tok.decode(prompt.ids).endswith("What saves nine?")


def _span(start, end, doc_id="d"):
    return Snippet(doc_id, DOC[start:end], start, end, chunk_id=f"{doc_id}:{start}", scores={"bm25": 1.0})


def test_snippets_are_merged_ordered_marked_and_point_at_their_text(tok):
    picked = [_span(300, 360), _span(40, 100), _span(0, 60), _span(330, 400), _span(40, 100)]  # overlaps, a repeat
    context = assemble(None, None, picked, 400, 1.0, _count(tok))
    assert [(s.char_start, s.char_end) for s in context.snippets] == [(0, 100), (300, 400)]
    assert len(context.snippets) == 2
    assert [s.char_start for s in context.snippets] == sorted(s.char_start for s in context.snippets)
    for i, s in enumerate(context.snippets, start=1):
        assert DOC[s.char_start : s.char_end] == s.text  # provenance: offsets point at the quoted text
        assert f"[{i}] {s.text}" in context.text
    assert context.text.count(ELLIPSIS) == 1


def test_head_and_tail_share_the_budget_and_shown_snippets_are_not_repeated(tok):
    doc = tokenize(DOC, tok)
    snippets = _snippets(tok)
    first, middle = snippets[0], snippets[len(snippets) // 2]
    context = assemble(doc, "d", [first, middle], 120, 0.5, _count(tok))
    assert context.text.startswith(DOC[:20])  # the head
    assert [s.chunk_id for s in context.snippets] == [middle.chunk_id]  # the head already shows `first`
    assert context.text.rstrip().endswith(DOC.rstrip()[-10:])  # the tail


def test_snippets_the_ends_already_show_give_their_room_back(tok):
    doc = tokenize(DOC, tok)
    first = _snippets(tok)[0]
    plain = assemble(doc, "d", [], 120, 0.5, _count(tok))
    assert assemble(doc, "d", [first], 120, 0.5, _count(tok)) == plain  # as if it had never been retrieved


def test_coverage_counts_what_the_prompt_shows_of_the_document(tok):
    doc = tokenize(DOC, tok)
    whole = assemble(doc, "d", [], len(doc) + 10, 0.0, _count(tok))
    assert whole.text == DOC and whole.coverage(doc, "d") == 1.0
    ends = assemble(doc, "d", [], 40, 0.0, _count(tok))
    assert ends.coverage(doc, "d") == pytest.approx(40 / len(doc), abs=2 / len(doc))
    middle = _snippets(tok)[len(_snippets(tok)) // 2]
    both = assemble(doc, "d", [middle], 80, 0.5, _count(tok))
    shown = doc.token_at(middle.char_end) - doc.token_at(middle.char_start)
    ends_budget = 80 - (_count(tok)(middle.text) + 4)  # what the snippet (and its marker) leaves to the ends
    assert both.coverage(doc, "d") == pytest.approx((ends_budget + shown) / len(doc), abs=3 / len(doc))
    assert assemble(None, None, [middle], 80, 1.0, _count(tok)).coverage(doc, "d") == pytest.approx(
        shown / len(doc), abs=1e-4
    )
    assert assemble(None, None, [middle], 80, 1.0, _count(tok)).coverage(doc, "other") == 0.0


def test_an_oversized_snippet_is_cut_to_fit(tok):
    big = _snippets(tok, size=200)[0]
    context = assemble(None, None, [big], 30, 1.0, _count(tok))
    (kept,) = context.snippets
    assert (
        _count(tok)(kept.text) <= 26
        and big.text.startswith(kept.text)
        and DOC[kept.char_start : kept.char_end] == kept.text
    )


def test_a_question_longer_than_the_window_is_a_config_error(tok):
    with pytest.raises(ConfigError, match="question takes"):
        fit(tok, "why " * 200, lambda b: assemble(None, None, [], b, 1.0, _count(tok)), 50)


def test_chat_templates_are_used_when_the_tokenizer_has_one(tok):
    tok = make_tokenizer()
    tok.chat_template = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}<|assistant|>"
    ids = render(tok, "some context", "the question", ())
    text = tok.decode(ids)
    assert text.startswith("<|user|>") and "some context" in text and text.endswith("<|assistant|>")


def _chat_tokenizer(template):
    tok = make_tokenizer()
    tok.chat_template = template
    return tok


def test_a_conversation_goes_through_the_chat_template_with_its_roles():
    from lift_test_helpers import CHAT_TEMPLATE

    tok = _chat_tokenizer(CHAT_TEMPLATE)
    history = [("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello")]
    text = tok.decode(render(tok, "CONTEXT", "Key?", (0,), history))
    assert text.index("<|system|>Be brief.") < text.index("<|user|>Hi") < text.index("<|assistant|>Hello")
    assert text.index("<|assistant|>Hello") < text.index("CONTEXT") < text.rindex("Key?")
    assert text.endswith("<|assistant|>")


def test_a_template_that_refuses_the_system_role_gets_it_in_the_first_user_turn():
    strict = (
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no system role') }}{% endif %}"
        "<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    tok = _chat_tokenizer(strict)
    text = tok.decode(render(tok, "", "Key?", (0,), [("system", "Be brief."), ("user", "Hi")]))
    assert "<|user|>Be brief.\n\nHi" in text and "<|system|>" not in text


def test_a_completion_model_reads_the_conversation_as_a_transcript(tok):
    text = tok.decode(render(tok, "", "Key?", (0,), [("user", "Hi"), ("assistant", "Hello")]))
    assert text.endswith("User: Hi\nAssistant: Hello\nUser: Key?\nAssistant:")


def test_turns_that_do_not_fit_are_dropped_oldest_first_system_turns_stay(tok):
    history = [("system", "Be brief."), *[("user", TEXT[:200]), ("assistant", TEXT[200:400])] * 3]
    bare = len(render(tok, "", "Key?", (0,), [history[0]]))
    prompt = fit(tok, "Key?", lambda budget: assemble(None, None, [], budget, 1.0, _count(tok)), bare + 60, (0,),
                 history)  # fmt: skip
    text = tok.decode(prompt.ids)
    assert text.startswith("<s>System: Be brief.") and len(prompt.ids) <= bare + 60
