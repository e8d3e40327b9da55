"""Every code block of README.md and docs/ runs as written, offline, on builtin:tiny (directives: doc_blocks.py).

A page's blocks run in order in one folder and one Python namespace, as a reader would run them: the folder
holds the files the pages name (tests/docs_fixtures: handbook.txt, report.txt, ...), ``$LIFT_MEMORY_HOME``
points into it, and ``lift-memory`` is the installed command. Each block is its own test; a block that needs
what cannot run here (the Hugging Face Hub, a remote API, vLLM, minutes of training) carries a skip directive
with its reason, which pytest's summary shows.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from doc_blocks import LANGUAGES, PAGES, ROOT, Block, blocks

FIXTURES = Path(__file__).parent / "docs_fixtures"
BLOCKS = [block for page in PAGES for block in blocks(page)]
CHECKED = [b for b in BLOCKS if b.lang != "text"]


def test_every_block_is_labelled_and_every_skip_says_why():
    for block in BLOCKS:
        assert block.lang in LANGUAGES, f"{block.id}: label the fence with one of {sorted(LANGUAGES)}"
        assert block.skip is None or len(block.skip) >= 20, f"{block.id}: a skip needs its reason"
        assert block.port is None or block.lang == "bash", f"{block.id}: only a bash block runs in the background"
    assert sum(b.skip is None for b in CHECKED) >= 0.6 * len(CHECKED)  # skipping is the exception


def test_the_directives_parser_finds_what_it_must(tmp_path, monkeypatch):
    page = tmp_path / "page.md"
    page.write_text(
        "Intro\n\n<!-- docs-test: skip: needs a remote API key -->\n```python\nraise SystemExit\n```\n\n"
        "<!-- docs-test: setup\nx = 1\n-->\n  ```bash\n  echo $x\n  ```\n<!-- docs-test: background 9 -->\n"
    )
    monkeypatch.setattr("doc_blocks.ROOT", tmp_path)
    with pytest.raises(ValueError, match="precedes no block"):
        blocks("page.md")
    page.write_text(page.read_text() + "```bash\nsleep 1\n```\n")
    skipped, shell, server = blocks("page.md")
    assert (skipped.skip, skipped.line, skipped.lang) == ("needs a remote API key", 4, "python")
    assert (shell.setup, shell.code, shell.skip) == ("x = 1", "echo $x", None)
    assert server.port == 9 and server.setup == ""


class PageRun:
    """One page's blocks run in order, each once, in the page's own folder and namespace."""

    def __init__(self, page: str, folder: Path) -> None:
        self.page, self.folder = page, folder
        shutil.copytree(FIXTURES, folder, dirs_exist_ok=True)
        bin_dir = str(Path(sys.executable).parent)
        self.env = {
            "LIFT_MEMORY_HOME": str(folder / "home"),
            "HF_HUB_OFFLINE": "1",
            "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        }
        self.namespace: dict = {"__name__": "__docs__"}
        self.done: dict[str, BaseException | None] = {}
        self.servers: list[subprocess.Popen] = []

    def run(self, block: Block) -> None:
        for earlier in blocks(self.page):
            if earlier.id == block.id:
                break
            if earlier.skip is None and earlier.id not in self.done:
                self._run_once(earlier)
            if isinstance(self.done.get(earlier.id), pytest.skip.Exception):
                pytest.skip(f"an earlier block of the page was skipped: {earlier.id}")
            if self.done.get(earlier.id) is not None:
                pytest.fail(f"an earlier block of the page failed: {earlier.id}: {self.done[earlier.id]!r}"[:500])
        self._run_once(block)
        if (error := self.done[block.id]) is not None:
            raise error

    def _run_once(self, block: Block) -> None:
        try:
            with self._inside():
                if block.setup:
                    exec(compile(block.setup, f"{block.id} (setup)", "exec"), self.namespace)
                if block.file:
                    (self.folder / block.file).write_text(block.code + "\n")
                getattr(self, f"_{block.lang}")(block)
        except BaseException as exc:  # recorded, so later blocks of the page say which one broke
            self.done[block.id] = exc
        else:
            self.done[block.id] = None

    @contextlib.contextmanager
    def _inside(self):
        cwd, saved = os.getcwd(), {k: os.environ.get(k) for k in self.env}
        os.chdir(self.folder)
        os.environ.update(self.env)
        try:
            yield
        finally:
            os.chdir(cwd)
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def _python(self, block: Block) -> None:
        exec(compile(block.code, block.id, "exec"), self.namespace)

    def _bash(self, block: Block) -> None:
        self._release_memories()  # a CLI command opens the same folders: the page's memories let go of them
        if block.port is not None:
            self._serve(block)
            return
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block.code],
            cwd=self.folder,
            env=os.environ,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, f"{block.id} exited {done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-3000:]}"

    def _serve(self, block: Block) -> None:
        if _listening(block.port):
            pytest.skip(f"port {block.port} is already in use on this machine")
        server = subprocess.Popen(
            ["bash", "-c", block.code],
            cwd=self.folder,
            env=os.environ,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.servers.append(server)
        deadline = time.monotonic() + 30
        while not _listening(block.port):
            assert server.poll() is None, f"{block.id}: the server exited with {server.returncode}"
            assert time.monotonic() < deadline, f"{block.id}: nothing listens on port {block.port} after 30 s"
            time.sleep(0.2)

    def _toml(self, block: Block) -> None:
        from lift_memory.cli.common import toml as _toml

        _toml().loads(block.code)

    def _json(self, block: Block) -> None:
        for line in filter(str.strip, block.code.splitlines()):
            json.loads(line)

    def _text(self, block: Block) -> None:
        pass  # diagrams and file layouts: nothing to run

    def _release_memories(self) -> None:
        from lift_memory import LiftMemory

        for value in self.namespace.values():
            if isinstance(value, LiftMemory):
                value.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._release_memories()
        for server in self.servers:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
        self.namespace.clear()


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


@pytest.fixture(scope="module")
def pages(tmp_path_factory, builtin_dir):
    runs: dict[str, PageRun] = {}

    def get(page: str) -> PageRun:
        if page not in runs:
            for other in runs.values():  # pages run one after another: the last one's servers stop first
                other.close()
            runs[page] = PageRun(page, tmp_path_factory.mktemp(Path(page).stem))
        return runs[page]

    yield get
    for run in runs.values():
        run.close()


@pytest.mark.slow
@pytest.mark.parametrize(
    "block",
    [pytest.param(b, id=b.id, marks=[pytest.mark.skip(reason=b.skip)] if b.skip else []) for b in CHECKED],
)
def test_block_runs_as_written(block: Block, pages) -> None:
    pages(block.page).run(block)


def test_every_fixture_file_is_one_a_page_names():
    text = "\n".join((ROOT / page).read_text() for page in PAGES)
    for path in FIXTURES.iterdir():
        assert path.name in text, f"no page names {path.name}: remove it from {FIXTURES}"
