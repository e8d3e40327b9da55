"""lift-memory inside LangChain: memory tools, a chain around ChatLIFT, a retriever and a LangGraph store.

    python examples/langchain_agent.py

Offline on builtin:tiny. The tools are what an agent would call; here a short scripted plan calls them the
way a tool-calling model would (builtin:tiny has no tool-call format of its own).
"""

from __future__ import annotations

import argparse
import tempfile

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_lift import AskMemoryTool, ChatLIFT, LiftRetriever, LiftStore, MemorizeDocumentTool

from lift_memory import LiftMemory, MemoryConfig
from lift_memory.config import TrainConfig

NOTES = (
    "Release notes. The build server moved to the third floor. Deployments happen on Tuesdays. "
    "The release code name is Blue Heron. Rollbacks need two approvals from the on-call team. "
) * 8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", help="memory directory (default: a temporary one)")
    parser.add_argument("--max-steps", type=int, default=120)
    args = parser.parse_args()
    memory = LiftMemory(
        MemoryConfig(train=TrainConfig(max_steps=args.max_steps)), root=args.root or tempfile.mkdtemp(), progress=False
    )

    # 1. The tools an agent gets: memorize a document, then ask it.
    memorize, ask = MemorizeDocumentTool(memory=memory), AskMemoryTool(memory=memory)
    print(memorize.invoke({"text": NOTES, "doc_id": "release-notes", "title": "Release notes"}))
    print(ask.invoke({"question": "The release code name is", "doc_id": "release-notes"}))

    # 2. A chain: prompt template -> ChatLIFT (answers through the router) -> string.
    chat = ChatLIFT(memory=memory, doc_id="release-notes", max_tokens=12)
    chain = ChatPromptTemplate.from_messages([("human", "{prefix}")]) | chat | StrOutputParser()
    print("chain:", repr(chain.invoke({"prefix": "Rollbacks need"})))
    message = chat.invoke("Deployments happen on")
    print("route:", message.response_metadata["route"], "| snippets:", len(message.response_metadata["snippets"]))

    # 3. Retrieval as LangChain Documents, with provenance.
    for doc in LiftRetriever(memory=memory, k=2).invoke("Blue Heron"):
        print("retrieved:", doc.metadata["doc_id"], doc.metadata["char_start"], doc.page_content[:60])

    # 4. A LangGraph store for an agent's long-term memory (pass it as `store=` to LangGraph agents).
    store = LiftStore(memory)
    store.put(("users", "ada"), "pref", {"text": "Ada wants release summaries in French."})
    print("store:", [(h.key, round(h.score, 4)) for h in store.search(("users",), query="summaries language")])


if __name__ == "__main__":
    main()
