"""``ChatLIFT``: a LangChain chat model that answers from lift-memory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, Field

from langchain_lift._memory import MemoryFields
from lift_memory.router import Mode

_ROLES = {"system": "system", "human": "user", "ai": "assistant"}


def conversation(messages: list[BaseMessage]) -> tuple[str, list[tuple[str, str]]]:
    """The question (the last human message) and the turns before it as (role, text) pairs, which lift-memory
    renders through the model's chat template. Tool results become user turns (the models run here have no
    tool role in common)."""
    last = max((i for i, m in enumerate(messages) if m.type == "human"), default=len(messages) - 1)
    history = []
    for m in messages[:last]:
        role = _ROLES.get(m.type)
        history.append((role, m.text) if role else ("user", f"{m.type.title()} result: {m.text}"))
    return (messages[last].text if messages else ""), history


class ChatLIFT(MemoryFields, BaseChatModel):
    """Chat model answering through lift-memory's router: a document's adapter on the model, retrieved
    snippets and the document's head and tail in the prompt, as the router decides per question.

    Example:
        ```python
        from lift_memory import LiftMemory
        from langchain_lift import ChatLIFT

        memory = LiftMemory(root="./memories")
        memory.memorize(open("handbook.txt").read(), doc_id="handbook")

        chat = ChatLIFT(memory=memory, doc_id="handbook")
        print(chat.invoke("How many vacation days are there?").content)
        for chunk in chat.stream("Who approves expenses?"):
            print(chunk.content, end="")
        ```

    Conversations keep their roles (system included) through the model's chat template; the last human
    message is the question that retrieval searches for. The answer's route, adapter, snippets (with offsets)
    and timings are in ``response_metadata``, and token counts in ``usage_metadata``, also when a stop string
    ended the answer. Tool calling and structured output are not supported: the models lift-memory adapts are
    run locally without a tool-call format.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, populate_by_name=True)

    doc_id: str | None = None
    """The document to answer from; None: any document of the namespace (retrieval decides)."""
    namespace: str | None = None
    """Retrieval namespace (default: the memory's)."""
    mode: Mode = "auto"
    """Route: ``auto`` lets the router decide per question."""
    k: int | None = Field(default=None, ge=1)
    """Snippets to retrieve (default: the memory's)."""
    temperature: float = Field(default=0.0, ge=0.0)
    """0 decodes greedily."""
    max_tokens: int | None = Field(default=None, ge=1)
    """Generation budget in tokens (default: the memory's)."""
    stop: list[str] | None = None
    """Cut the answer before the first of these strings."""
    timeout: float | None = Field(default=None, gt=0)
    """Stop decoding after this many seconds."""
    streaming: bool = False
    """Generate through the streaming path even when invoked (same text either way)."""

    @property
    def _llm_type(self) -> str:
        return "lift"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.base_model, "doc_id": self.doc_id, "namespace": self.namespace, "mode": self.mode}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(ls_provider="lift", ls_model_name=self.base_model, ls_model_type="chat")
        params["ls_temperature"] = self.temperature
        if self.max_tokens is not None:
            params["ls_max_tokens"] = self.max_tokens
        if stop or self.stop:
            params["ls_stop"] = stop or self.stop
        return params

    def _answer_stream(self, messages: list[BaseMessage], stop: list[str] | None, **kwargs: Any):
        question, history = conversation(messages)
        return self.lift.stream(
            question,
            kwargs.get("doc_id", self.doc_id),
            history=history,
            stop=stop or self.stop,  # lift-memory ignores empty stop strings
            mode=kwargs.get("mode", self.mode),
            namespace=kwargs.get("namespace", self.namespace),
            k=kwargs.get("k", self.k),
            max_new_tokens=kwargs.get("max_tokens", self.max_tokens),
            temperature=kwargs.get("temperature", self.temperature),
            max_seconds=self.timeout,
        )

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        stream = self._answer_stream(messages, stop, **kwargs)
        for piece in stream:  # stop strings are cut in lift-memory's decoder, even across pieces
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
            if run_manager:
                run_manager.on_llm_new_token(piece, chunk=chunk)
            yield chunk
        answer = stream.answer
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                response_metadata=_metadata(answer, self.base_model),
                usage_metadata=_usage(answer),
                chunk_position="last",
            )
        )

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        # The model runs synchronously under a lock held for the whole answer, so the stream must be consumed
        # in one thread: a worker produces the chunks, the event loop receives them through a queue.
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        done = object()

        def produce() -> None:
            try:
                for chunk in self._stream(messages, stop=stop, **kwargs):
                    loop.call_soon_threadsafe(queue.put_nowait, chunk)
            except BaseException as exc:  # handed to the consumer, which raises it
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, done)

        worker = loop.run_in_executor(None, produce)
        while (item := await queue.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            if run_manager and item.text:
                await run_manager.on_llm_new_token(item.text, chunk=item)
            yield item
        await worker

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        chunks = list(self._stream(messages, stop=stop, run_manager=run_manager if self.streaming else None, **kwargs))
        last = chunks[-1].message
        text = "".join(c.message.content for c in chunks)
        message = AIMessage(content=text, response_metadata=last.response_metadata, usage_metadata=last.usage_metadata)
        return ChatResult(generations=[ChatGeneration(message=message)])


def _usage(answer) -> UsageMetadata:
    return UsageMetadata(
        input_tokens=answer.prompt_tokens,
        output_tokens=answer.generated_tokens,
        total_tokens=answer.prompt_tokens + answer.generated_tokens,
    )


def _metadata(answer, model_name: str) -> dict[str, Any]:
    return {
        "model_name": model_name,
        "route": answer.route,
        "adapter": answer.adapter,
        "doc_ids": list(answer.doc_ids),
        "snippets": [s.to_dict() for s in answer.snippets],
        "timings": answer.timings,
        "notes": list(answer.notes),
    }
