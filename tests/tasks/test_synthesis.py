from __future__ import annotations

import asyncio
import json
import time

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field

from lift_memory.errors import ConfigError
from lift_memory.tasks.extractive import (
    BLANK,
    ExtractiveGenerator,
    order_tasks,
    question_for,
    question_tasks,
    recall_tasks,
    sentences,
)
from lift_memory.tasks.llm import ChatModelGenerator, locate, parse_pairs
from lift_memory.tasks.pipeline import GenerationRejected, TaskStream
from lift_memory.tokens import TokenCounter

DOC = (
    "The archive opened on 1998-04-12 in Lyon. Its first curator was Marie Dubois. "
    'The vault code is "VX-7731" and only two people know it. The reading room seats 42 visitors. '
    "Deliveries arrive every Tuesday. The roof was repaired in 2004 after a storm. "
) * 3


def test_recall_tasks_mask_a_salient_span_and_answer_with_the_whole_sentence():
    tasks = recall_tasks(DOC)
    assert tasks and all(t.kind == "recall" and BLANK in t.prompt for t in tasks)
    masked = {}
    for t in tasks:
        sentence = t.prompt.split("\n", 1)[1]
        head, tail = sentence.split(BLANK)
        assert DOC[t.evidence_start : t.evidence_end] == t.answer  # the answer is the sentence, as written
        assert t.answer.startswith(head) and t.answer.endswith(tail)
        masked[t.answer[len(head) : len(t.answer) - len(tail)]] = t
    assert {"1998-04-12", '"VX-7731"', "42", "Marie Dubois", "2004"} <= set(masked)


def test_question_tasks_ask_what_a_sentence_answers():
    assert question_for("The vault code is a secret known to two people.") == "What is the vault code?"
    assert (
        question_for("The best thing to do in San Francisco is eat a sandwich and sit in Dolores Park.")
        == "What is the best thing to do in San Francisco?"
    )
    assert question_for("Marie Dubois ran the archive for twenty years.") == (
        "What does the document say about Marie Dubois?"
    )
    for unaskable in ["Too short here.", "If it rains we stay inside all day long.", "it was late in the day then."]:
        assert question_for(unaskable) is None
    text = "The roof is made of slate tiles from Wales. " + DOC
    tasks = question_tasks(text)
    assert tasks and all(t.kind == "question" and t.answer == text[t.evidence_start : t.evidence_end] for t in tasks)
    assert "What is the roof?" in {t.prompt for t in tasks}
    # DOC repeats itself: a question that several sentences would answer is dropped, not asked twice.
    assert len({t.prompt for t in tasks}) == len(tasks)


def test_order_tasks_are_deterministic_and_correct():
    a, b = order_tasks(DOC, 6, seed=1), order_tasks(DOC, 6, seed=1)
    assert a == b and len(a) == 6 and a != order_tasks(DOC, 6, seed=2)
    spans = sentences(DOC)
    for t in a:
        if t.prompt.startswith("Which passage"):
            first = t.prompt.split("\nA: ")[1].split("\nB: ")[0]
            second = t.prompt.split("\nB: ")[1]
            assert DOC.find(first) != DOC.find(second) or first == second
            # The answer names the passage whose evidence span starts the task's span.
            assert t.answer in ("Passage A comes first.", "Passage B comes first.")
            assert DOC[t.evidence_start :].startswith(first if t.answer == "Passage A comes first." else second)
        else:
            passage = t.prompt.split("\n", 1)[1]
            i = next(i for i, (s, e) in enumerate(spans) if DOC[s:e].startswith(passage))
            assert DOC[spans[i + 1][0] : spans[i + 1][1]].startswith(t.answer)


def test_extractive_generator_on_real_text():
    from lift_memory.builtin import held_out_text

    text = "\n\n".join(held_out_text())[:20000]
    tasks = asyncio.run(ExtractiveGenerator().agenerate(text, (0, len(text)), 0))
    kinds = {t.kind for t in tasks}
    assert kinds == {"question", "recall", "order"} and len(tasks) > 50
    assert all(0 <= t.evidence_start < t.evidence_end <= len(text) for t in tasks)


def test_parse_pairs():
    good = 'Sure! ```json\n[{"question": "Q?", "answer": "A", "evidence": "E."}, {"question": ""}]```'
    assert [p.question for p in parse_pairs(good)] == ["Q?"]
    assert parse_pairs('{"pairs": [{"question": "Q", "answer": "A", "evidence": "E"}]}')[0].answer == "A"
    for bad in ["no json here", "[1, 2", '{"question": "Q"}', "[]"]:
        with pytest.raises(GenerationRejected):
            parse_pairs(bad)


def test_locate_is_whitespace_insensitive():
    # Quotes around the whole evidence are taken off (writers often add them).
    assert locate('vault  code is\n"VX-7731"', DOC) == (DOC.find("vault code"), DOC.find("VX-7731") + 7)
    assert locate("a sentence that is not there", DOC) is None


def _reply(pairs):
    return json.dumps([{"question": q, "answer": a, "evidence": e} for q, a, e in pairs])


GOOD = _reply([("What is the vault code?", "VX-7731", 'The vault code is "VX-7731"')])
HALLUCINATED = _reply([("Who built it?", "Gustave Eiffel", "It was built by Gustave Eiffel.")])


def _stream(model, **kw):
    generator = ChatModelGenerator(model, unit_chars=200, encoding=None, fallback=lambda t: len(t.split()))
    return TaskStream(generator, DOC, "hash", max_attempts=3, timeout=kw.pop("timeout", 5), **kw).start()


def test_good_output_becomes_grounded_qa_tasks():
    stream = _stream(FakeListChatModel(responses=[GOOD]))
    stats = stream.wait()
    tasks = stream.tasks()
    assert stats.units >= 2 and stats.made == stats.units and stats.skipped_units == 0
    for t in tasks:
        assert t.kind == "qa" and t.answer == "VX-7731" and "VX-7731" in DOC[t.evidence_start : t.evidence_end]


def test_malformed_json_and_hallucinated_evidence_are_retried_then_skipped():
    # Per unit: a malformed reply, then a hallucination, then a good one: every unit succeeds on its third try.
    stream = _stream(FakeListChatModel(responses=["{not json", HALLUCINATED, GOOD]), concurrency=1)
    stats = stream.wait()
    assert stats.made == stats.units and stats.skipped_units == 0
    assert stats.attempts == 3 * stats.units and stats.rejected == stats.units  # one hallucinated pair per unit
    always_bad = _stream(FakeListChatModel(responses=[HALLUCINATED]))
    stats = always_bad.wait()
    assert (
        stats.made == 0
        and stats.skipped_units == stats.units
        and stats.skip_reasons == {"GenerationRejected": stats.units}
    )


class Flaky(FakeListChatModel):
    """A served model that drops the connection on its first call for each prompt, and one that breaks."""

    failures: dict = Field(default_factory=dict)

    async def ainvoke(self, prompt, **kwargs):
        key = hash(prompt)
        self.failures[key] = self.failures.get(key, 0) + 1
        if self.responses == ["boom"]:
            raise ValueError("a bug in the client, not worth retrying")
        if self.failures[key] == 1:
            raise ConnectionError("connection reset")
        return await super().ainvoke(prompt, **kwargs)


def test_transient_errors_are_retried_and_other_errors_skip_the_unit():
    stats = _stream(Flaky(responses=[GOOD], failures={})).wait()
    assert stats.made == stats.units and stats.attempts == 2 * stats.units
    stats = _stream(Flaky(responses=["boom"], failures={})).wait()
    assert stats.made == 0 and stats.skip_reasons == {"ValueError": stats.units} and stats.attempts == stats.units


def test_slow_responses_time_out_and_units_run_concurrently():
    slow = FakeListChatModel(responses=[GOOD], sleep=0.3)
    started = time.perf_counter()
    stats = _stream(slow, concurrency=8).wait()
    assert stats.made == stats.units and time.perf_counter() - started < 0.3 * stats.units  # overlapped
    stats = _stream(FakeListChatModel(responses=[GOOD], sleep=1.0), timeout=0.2).wait()
    assert stats.made == 0 and stats.skip_reasons == {"TimeoutError": stats.units}


def test_tasks_stream_in_before_generation_ends():
    stream = _stream(FakeListChatModel(responses=[GOOD], sleep=0.2), concurrency=1)
    time.sleep(0.5)
    partial = len(stream.tasks())
    assert partial > 0 and not stream.done
    stats = stream.wait()
    assert len(stream.tasks()) == stats.made > partial and stats.first_task_seconds < stats.seconds


def test_synthesized_tasks_are_cached(tmp_path):
    model = FakeListChatModel(responses=[GOOD])
    first = _stream(model, cache_dir=tmp_path)
    first.wait()
    calls = model.i
    again = _stream(model, cache_dir=tmp_path)
    stats = again.wait()
    assert stats.cached and again.tasks() == first.tasks() and model.i == calls  # no generation the second time


def test_token_counter_falls_back_offline():
    counter = TokenCounter("no-such-encoding", fallback=lambda text: len(text.split()))
    with pytest.warns(RuntimeWarning, match="unavailable"):
        assert counter.count("three little words") == 3
    assert counter.path == "tokenizer"
    assert (
        counter.truncate("one two three four", 2) == " three four"
        or counter.count(counter.truncate("one two three four", 2)) <= 2
    )
    assert TokenCounter(None).count("abcdefgh") == 2 and TokenCounter(None).path == ""


def test_prompts_fit_the_writers_window():
    generator = ChatModelGenerator(
        FakeListChatModel(responses=[GOOD]),
        unit_chars=100,
        context_chars=5000,
        max_prompt_tokens=150,
        encoding=None,
        fallback=lambda t: len(t.split()),
    )
    text = DOC * 10
    for unit in generator.plan(text):
        assert len(generator.prompt(text, unit).split()) <= 150


def test_the_expected_answer_of_a_recall_task_is_the_span_its_blank_hides():
    from lift_memory.eval.probe import expected_answer

    spans = {expected_answer(t) for t in recall_tasks(DOC)}
    assert {"1998-04-12", "VX-7731", "42", "Marie Dubois", "2004"} <= spans


class ToolCaller(BaseChatModel):
    """A served chat model with tool calling, at the boundary: per prompt it plays ``replies`` in order (a dict is
    the arguments of a call to the tool it was bound to, a string plain text) and records each call's kwargs."""

    replies: list
    calls: list = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "tool-caller"

    def bind_tools(self, tools, **kwargs):
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        prompt = messages[-1].content
        self.calls.append((prompt, kwargs))
        reply = self.replies[min(sum(p == prompt for p, _ in self.calls), len(self.replies)) - 1]
        if isinstance(reply, str):
            message = AIMessage(content=reply)
        else:
            name = kwargs["tools"][0]["function"]["name"]
            message = AIMessage(content="", tool_calls=[{"name": name, "args": reply, "id": "call-1"}])
        return ChatResult(generations=[ChatGeneration(message=message)])


def _pairs(*pairs):
    return {"pairs": [{"question": q, "answer": a, "evidence": e} for q, a, e in pairs]}


def _structured_stream(model, **kw):
    generator = ChatModelGenerator(model, unit_chars=200, encoding=None, fallback=lambda t: len(t.split()), **kw)
    return generator, TaskStream(generator, DOC, "hash", max_attempts=3, timeout=5).start()


def test_a_model_with_structured_output_is_asked_through_it_and_no_text_is_parsed():
    good = _pairs(("What is the vault code?", "VX-7731", 'The vault code is "VX-7731"'))
    model = ToolCaller(replies=[good])
    generator, stream = _structured_stream(model)
    stats = stream.wait()
    assert generator.structured is not None and generator.identity.endswith(":structured")
    assert stats.units >= 2 and stats.made == stats.units and stats.attempts == stats.units
    assert all(t.kind == "qa" and t.answer == "VX-7731" for t in stream.tasks())
    assert all(call[1]["tools"][0]["function"]["name"] == "QAList" for call in model.calls)


def test_structured_replies_that_do_not_fit_are_retried_by_sampling_then_skipped():
    good = _pairs(("What is the vault code?", "VX-7731", 'The vault code is "VX-7731"'))
    missing_evidence = {"pairs": [{"question": "What is the vault code?", "answer": "VX-7731"}]}
    text_only = GOOD  # JSON in the text instead of a tool call: not structured output, so not accepted
    model = ToolCaller(replies=[missing_evidence, text_only, good])
    _, stream = _structured_stream(model)
    stats = stream.wait()
    assert stats.made == stats.units and stats.attempts == 3 * stats.units
    temperatures = [kwargs.get("temperature") for _, kwargs in model.calls]
    assert temperatures.count(None) == stats.units and temperatures.count(0.7) == 2 * stats.units
    _, never = _structured_stream(ToolCaller(replies=[_pairs(("Who?", "", "   "))]))
    stats = never.wait()
    assert stats.made == 0 and stats.skip_reasons == {"GenerationRejected": stats.units}


def test_models_without_structured_output_fall_back_to_parsing_text():
    plain = FakeListChatModel(responses=[GOOD])  # no tool calling
    generator = ChatModelGenerator(plain, encoding=None, fallback=len)
    assert generator.structured is None and not generator.identity.endswith(":structured")
    assert ChatModelGenerator(ToolCaller(replies=[]), structured=False, encoding=None, fallback=len).structured is None
    with pytest.raises(ConfigError, match="FakeListChatModel offers no structured output"):
        ChatModelGenerator(plain, structured=True, encoding=None, fallback=len)
