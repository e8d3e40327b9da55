"""LangChain and LangGraph integration for lift-memory."""

from langchain_lift.chat_models import ChatLIFT
from langchain_lift.retrievers import LiftRetriever
from langchain_lift.stores import LiftStore
from langchain_lift.tools import AskMemoryTool, MemorizeDocumentTool

__all__ = ["AskMemoryTool", "ChatLIFT", "LiftRetriever", "LiftStore", "MemorizeDocumentTool"]
