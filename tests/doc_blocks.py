"""The fenced code blocks of README.md and docs/*.md, and the directives that tell ``test_docs.py`` how to run them.

Every fence names its language. ``python`` and ``bash`` blocks run; ``toml`` and ``json`` blocks are parsed
(``json`` blocks show output, one JSON value per line); ``text`` blocks (diagrams, file layouts) are only
checked to be labelled. A directive is an HTML comment (invisible on a rendered page) between a block and the
one before it, and applies to the next block:

    <!-- docs-test: skip: REASON -->         not run; the reason shows in pytest's summary
    <!-- docs-test: file NAME -->            also written to NAME in the page's folder (e.g. a config file)
    <!-- docs-test: background PORT -->      a bash command started in the background (a server) and awaited
                                             on 127.0.0.1:PORT; stopped when the page ends
    <!-- docs-test: setup                    hidden Python run first, in the page's namespace: what a reader
    memory = LiftMemory(root="./memories")   has already done by this point (a memory, a text)
    -->
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).parents[1]
PAGES = ("README.md", *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md")))
LANGUAGES = {"python", "bash", "toml", "json", "text"}
FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
DIRECTIVE = re.compile(r"^\s*<!-- docs-test: (skip|file|background|setup)\b:?\s*(.*?)\s*(-->)?$")


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    """The line of the opening fence (1-based)."""
    lang: str
    code: str
    skip: str | None = None
    file: str | None = None
    port: int | None = None
    setup: str = ""

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def blocks(page: str) -> list[Block]:
    """The fenced blocks of ``page`` (relative to the repository root), with their directives.

    Raises:
        ValueError: an unterminated fence, an unknown directive, or a directive with nothing after it.
    """
    lines = (ROOT / page).read_text().splitlines()
    found, pending, setup, i = [], {}, [], 0
    while i < len(lines):
        directive = DIRECTIVE.search(lines[i])
        fence = FENCE.match(lines[i])
        if directive:
            kind, argument, closed = directive.groups()
            if kind == "setup":
                end = i if closed else next(k for k in range(i + 1, len(lines)) if lines[k].strip() == "-->")
                setup.append("\n".join(lines[i + 1 : end]))
                i = end
            else:
                if not closed:
                    raise ValueError(f"{page}:{i + 1}: a docs-test directive must close on its line")
                pending[kind] = argument
        elif fence:
            end = next(
                (k for k in range(i + 1, len(lines)) if FENCE.match(lines[k]) and not FENCE.match(lines[k])[2]), None
            )
            if end is None:
                raise ValueError(f"{page}:{i + 1}: the fence is never closed")
            port = pending.get("background")
            found.append(
                Block(
                    page,
                    i + 1,
                    fence[2],
                    textwrap.dedent("\n".join(lines[i + 1 : end])),
                    skip=pending.get("skip"),
                    file=pending.get("file"),
                    port=int(port) if port else None,
                    setup=textwrap.dedent("\n".join(setup)),
                )
            )
            pending, setup, i = {}, [], end
        i += 1
    if pending or setup:
        raise ValueError(f"{page}: a docs-test directive at the end of the page precedes no block")
    return found
