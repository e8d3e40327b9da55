"""Agent tools over a lift-memory: ``memorize_document`` and ``ask_memory``."""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.callbacks import CallbackManagerForToolRun
from langchain_core.tools import BaseTool, ToolException
from pydantic import BaseModel, ConfigDict, Field

from langchain_lift._memory import MemoryFields
from lift_memory import LiftMemoryError
from lift_memory.router import Mode


class MemorizeDocumentInput(BaseModel):
    """Arguments of ``memorize_document``."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(description="The full text of the document to memorize.")
    doc_id: str | None = Field(
        default=None, description="A short id (letters, digits, '.', '_', '-') to refer to the document later."
    )
    title: str | None = Field(default=None, description="A human-readable title.")


class AskMemoryInput(BaseModel):
    """Arguments of ``ask_memory``."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(description="The question to answer from memorized documents.")
    doc_id: str | None = Field(default=None, description="The document to answer from; omit to search all.")


class _MemoryTool(MemoryFields, BaseTool):
    model_config = ConfigDict(arbitrary_types_allowed=True, populate_by_name=True)

    handle_tool_error: bool = True  # a LiftMemoryError becomes the tool's answer, so the agent can react


class MemorizeDocumentTool(_MemoryTool):
    """Memorize a document into lift-memory (adapter and retrieval index); returns its id.

    Example:
        ```python
        from langchain_lift import MemorizeDocumentTool

        tool = MemorizeDocumentTool(memory=memory)
        tool.invoke({"text": open("notes.txt").read(), "doc_id": "notes"})
        ```
    """

    response_format: Literal["content", "content_and_artifact"] = "content_and_artifact"
    """The record, as a dict, is the message's artifact (for the program, not the model)."""
    name: str = "memorize_document"
    description: str = (
        "Store a long document in long-term memory so that later questions can be answered from it. "
        "Returns the document id to use with ask_memory."
    )
    args_schema: type[BaseModel] = MemorizeDocumentInput
    background: bool = False
    """Return as soon as the document is stored and indexed, and train its adapter in the background
    (``LiftMemory.memorize(background=True)``): the agent can ask at once, answered by retrieval until the
    adapter is ready. The artifact then holds the job (``job``)."""

    def _run(
        self,
        text: str,
        doc_id: str | None = None,
        title: str | None = None,
        run_manager: CallbackManagerForToolRun | None = None,
    ) -> tuple[str, dict[str, Any]]:
        try:
            record = self.lift.memorize(text, doc_id=doc_id, title=title, background=self.background)
        except LiftMemoryError as exc:
            raise ToolException(str(exc)) from exc
        content = f"memorized as {record.doc_id!r} ({record.n_tokens} tokens; {record.reason})"
        job = self.lift.job(record.doc_id) if self.background else None
        return content, {**record.to_dict(), "job": None if job is None else job.to_dict()}


class AskMemoryTool(_MemoryTool):
    """Answer a question from lift-memory; the answer lists its sources.

    Example:
        ```python
        from langchain_lift import AskMemoryTool

        tool = AskMemoryTool(memory=memory)
        print(tool.invoke({"question": "What is the passkey?", "doc_id": "notes"}))
        ```
    """

    name: str = "ask_memory"
    description: str = (
        "Answer a question from documents stored in long-term memory. Pass doc_id to ask one document, "
        "or omit it to search all of them. The answer ends with its sources."
    )
    args_schema: type[BaseModel] = AskMemoryInput
    response_format: Literal["content", "content_and_artifact"] = "content_and_artifact"
    """The answer's route, adapter and snippets (with offsets) are the message's artifact."""
    mode: Mode = "auto"
    """Route used by lift-memory's router."""

    def _run(
        self, question: str, doc_id: str | None = None, run_manager: CallbackManagerForToolRun | None = None
    ) -> tuple[str, dict[str, Any]]:
        try:
            answer = self.lift.ask(question, doc_id, mode=self.mode)
        except LiftMemoryError as exc:
            raise ToolException(str(exc)) from exc
        sources = [f"[{i}] {s.doc_id} chars {s.char_start}-{s.char_end}" for i, s in enumerate(answer.snippets, 1)]
        lines = [answer.text.strip() or "(no answer)", f"(route: {answer.route}, adapter: {answer.adapter})"]
        return "\n".join(lines + (["Sources: " + "; ".join(sources)] if sources else [])), answer.to_dict()
