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


class TestChatLIFTIntegration(ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[ChatLIFT]:
        return ChatLIFT

    @property
    def chat_model_params(self) -> dict:
        return {"memory": shared_memory(), "doc_id": "handbook", "max_tokens": 12}

    @property
    def standard_chat_model_params(self) -> dict:
        return {**super().standard_chat_model_params, "max_tokens": 12}

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


def test_stop_sequences_cut_the_answer():
    chat = ChatLIFT(memory=shared_memory(), doc_id="handbook", max_tokens=20, mode="lift")
    full = chat.invoke("The office opens at").content
    word = full.split()[1] if len(full.split()) > 1 else full.strip()
    cut = chat.invoke("The office opens at", stop=[word]).content
    assert word not in cut and full.startswith(cut)


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
