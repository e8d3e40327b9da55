"""LangChain's standard integration tests, run offline on builtin:tiny, plus our own checks.

Not applicable, so switched off through the standard properties (the suites then skip those tests):
tool calling, tool choice and structured output (builtin:tiny has no tool-call format; lift-memory runs
models locally without one), and image/audio/PDF inputs (text models).
"""

from __future__ import annotations

import pytest
from langchain_lift import AskMemoryTool, ChatLIFT, LiftRetriever, MemorizeDocumentTool
from langchain_tests.integration_tests import (
    ChatModelIntegrationTests,
    RetrieversIntegrationTests,
    ToolsIntegrationTests,
)
from lc_test_memory import HANDBOOK, shared_memory

NOT_APPLICABLE = ("max_retries", "api_key")  # a local model makes no remote calls and needs no key


class TestChatLIFTIntegration(ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[ChatLIFT]:
        return ChatLIFT

    @property
    def chat_model_params(self) -> dict:
        return {"memory": shared_memory(), "doc_id": "handbook", "max_tokens": 12}

    @property
    def standard_chat_model_params(self) -> dict:
        params = {**super().standard_chat_model_params, "max_tokens": 12}
        return {k: v for k, v in params.items() if k not in NOT_APPLICABLE}

    @property
    def supports_model_override(self) -> bool:
        return False  # a memory's adapters belong to one base model


class TestLiftRetrieverIntegration(RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> type[LiftRetriever]:
        return LiftRetriever

    @property
    def retriever_constructor_params(self) -> dict:
        return {"memory": shared_memory(), "k": 2}

    @property
    def retriever_query_example(self) -> str:
        return "What is the pass key for the server room?"


class TestAskMemoryToolIntegration(ToolsIntegrationTests):
    @property
    def tool_constructor(self):
        return AskMemoryTool

    @property
    def tool_constructor_params(self) -> dict:
        return {"memory": shared_memory()}

    @property
    def tool_invoke_params_example(self) -> dict:
        return {"question": "The pass key for the server room is", "doc_id": "handbook"}


class TestMemorizeDocumentToolIntegration(ToolsIntegrationTests):
    @property
    def tool_constructor(self):
        return MemorizeDocumentTool

    @property
    def tool_constructor_params(self) -> dict:
        return {"memory": shared_memory()}

    @property
    def tool_invoke_params_example(self) -> dict:
        return {"text": "The parking garage closes at ten.", "doc_id": "parking"}


def test_streamed_text_equals_invoked_text_and_carries_provenance():
    chat = ChatLIFT(memory=shared_memory(), doc_id="handbook", max_tokens=10, mode="hybrid")
    invoked = chat.invoke("The pass key for the server room is")
    chunks = list(chat.stream("The pass key for the server room is"))
    assert "".join(c.content for c in chunks) == invoked.content
    meta = invoked.response_metadata
    assert meta["route"] == "hybrid" and meta["adapter"] == "handbook" and meta["snippets"]
    for s in meta["snippets"]:
        assert HANDBOOK[s["char_start"] : s["char_end"]] == s["text"]
    assert invoked.usage_metadata["output_tokens"] <= 10
    assert chunks[-1].chunk_position == "last"


def test_a_stop_string_split_across_pieces_never_leaks_and_the_metadata_survives():
    chat = ChatLIFT(memory=shared_memory(), doc_id="handbook", max_tokens=24, mode="hybrid")
    pieces = [c.content for c in chat.stream("The office opens at") if c.content]
    full = "".join(pieces)
    joints = [len("".join(pieces[: i + 1])) for i in range(len(pieces) - 1)]
    joint = next(j for j in joints if j >= 2 and len(full) - j >= 2 and full[j - 2 : j + 2].strip())
    stop = full[joint - 2 : joint + 2]  # two characters of one piece and two of the next
    chunks = list(chat.stream("The office opens at", stop=[stop]))
    streamed = "".join(c.content for c in chunks)
    assert streamed == full[: full.index(stop)] and stop[:2] not in streamed[len(streamed) - 2 :]
    last = chunks[-1]
    assert last.response_metadata["route"] == "hybrid" and last.response_metadata["snippets"]
    assert 0 < last.usage_metadata["output_tokens"] < 24
    invoked = chat.invoke("The office opens at", stop=[stop])
    assert invoked.content == streamed and invoked.usage_metadata["input_tokens"] > 0


def test_a_conversation_keeps_its_roles_and_model_name_is_the_base_model():
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

    chat = ChatLIFT(memory=shared_memory(), doc_id="note", max_tokens=6)  # read whole: the prompt has room
    turns = [SystemMessage("Answer briefly."), HumanMessage("Hi"), AIMessage("Hello.")]
    answer = chat.invoke([*turns, HumanMessage("The vending machine")])
    assert answer.response_metadata["model_name"] == shared_memory().config.model.name == chat.model_name
    alone = chat.invoke("The vending machine").usage_metadata["input_tokens"]
    assert answer.usage_metadata["input_tokens"] >= alone + 6  # the earlier turns are in the prompt


def test_retriever_documents_carry_provenance():
    docs = LiftRetriever(memory=shared_memory(), k=3).invoke("pass key server room 4817-QX")
    assert docs and docs[0].metadata["doc_id"] == "handbook" and "4817-QX" in docs[0].page_content
    d = docs[0].metadata
    assert HANDBOOK[d["char_start"] : d["char_end"]] == docs[0].page_content and "phrase" in d["scores"]


def test_tools_report_errors_to_the_agent_instead_of_raising():
    out = AskMemoryTool(memory=shared_memory()).invoke({"question": "?", "doc_id": "no-such-doc"})
    assert "no memory with doc_id 'no-such-doc'" in out
    out = MemorizeDocumentTool(memory=shared_memory()).invoke({"text": "   "})
    assert "empty" in out


@pytest.mark.asyncio
async def test_async_paths():
    chat = ChatLIFT(memory=shared_memory(), doc_id="note", max_tokens=5)
    message = await chat.ainvoke("The vending machine takes")
    assert message.response_metadata["route"] == "icl"  # the note fits the window: read whole
    docs = await LiftRetriever(memory=shared_memory(), k=1).ainvoke("vending machine")
    assert docs[0].metadata["doc_id"] == "note"


def test_retriever_search_kwargs_namespace_and_threshold():
    from pydantic import ValidationError

    from lift_memory.errors import ConfigError

    memory = shared_memory()
    everything = LiftRetriever(memory=memory, k=4).invoke("pass key server room")
    assert len(LiftRetriever(memory=memory, search_kwargs={"k": 2}).invoke("pass key server room")) == 2
    assert len(LiftRetriever(memory=memory, k=4).invoke("pass key server room", k=1)) == 1
    cut = everything[1].metadata["score"]
    kept = LiftRetriever(memory=memory, k=4, score_threshold=cut).invoke("pass key server room")
    assert [d.id for d in kept] == [d.id for d in everything if d.metadata["score"] >= cut]
    only = LiftRetriever(memory=memory, search_kwargs={"doc_ids": ["note"]}).invoke("pass key")
    assert {d.metadata["doc_id"] for d in only} == {"note"}
    assert LiftRetriever(memory=memory, namespace="nobody-here").invoke("pass key") == []
    with pytest.raises(ConfigError, match="k=0"):
        LiftRetriever(memory=memory).invoke("pass key", k=0)
    with pytest.raises(ValidationError, match="unknown search_kwargs"):
        LiftRetriever(memory=memory, search_kwargs={"fetch_k": 20})


def test_tools_return_content_and_artifact():
    call = {"name": "ask_memory", "args": {"question": "pass key server room", "doc_id": "handbook"},
            "id": "call-1", "type": "tool_call"}  # fmt: skip
    message = AskMemoryTool(memory=shared_memory(), mode="rag").invoke(call)
    assert message.artifact["route"] == "rag" and message.artifact["snippets"]
    assert message.artifact["snippets"][0]["doc_id"] == "handbook" and "Sources:" in message.content
    call = {"name": "memorize_document", "args": {"text": "The canteen closes at three.", "doc_id": "canteen"},
            "id": "call-2", "type": "tool_call"}  # fmt: skip
    message = MemorizeDocumentTool(memory=shared_memory()).invoke(call)
    assert message.artifact["doc_id"] == "canteen" and "memorized as 'canteen'" in message.content


def test_the_memorize_tool_can_train_in_the_background():
    memory = shared_memory()
    text = " ".join(f"Room {i} of the west wing holds the archive box number {i * 3}." for i in range(80))
    call = {"name": "memorize_document", "args": {"text": text, "doc_id": "west-wing"}, "id": "c", "type": "tool_call"}
    message = MemorizeDocumentTool(memory=memory, background=True).invoke(call)
    assert "trains in the background" in message.content and message.artifact["job"]["doc_id"] == "west-wing"
    assert message.artifact["job"]["state"] in ("queued", "training") and not message.artifact["trained"]
    assert memory.wait("west-wing", timeout=120) and memory.job("west-wing").state == "ready"
    assert memory.get("west-wing").trained
    memory.forget("west-wing")
