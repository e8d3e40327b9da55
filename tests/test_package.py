from __future__ import annotations

import subprocess
import sys

import pytest

import lift_memory


def test_public_api_is_frozen():
    assert lift_memory.__all__ == [
        "Answer",
        "LiftMemory",
        "LiftMemoryError",
        "MemoryConfig",
        "MemoryRecord",
        "Snippet",
        "__version__",
    ]


def test_import_is_light():
    code = (
        "import sys, lift_memory; "
        "heavy = [m for m in ('torch', 'transformers', 'peft', 'chromadb', 'langchain_core', 'tiktoken') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_error_derives_from_the_root_and_a_builtin():
    from lift_memory import errors

    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, Exception)]
    assert len(classes) > 5
    for cls in classes:
        assert issubclass(cls, lift_memory.LiftMemoryError)
        if cls is not lift_memory.LiftMemoryError:
            assert any(b.__module__ == "builtins" for b in cls.__mro__[1:-2])


def _requirements() -> tuple[list[str], dict[str, list[str]]]:
    """The installed distribution's unconditional requirements (names) and its extras' requirements."""
    import re
    from importlib.metadata import requires

    plain, extras = [], {}
    for line in requires("lift-memory") or []:
        name = re.split(r"[ ;<>=!~\[]", line, maxsplit=1)[0].lower()
        marker = re.search(r"extra == \"([^\"]+)\"", line)
        (extras.setdefault(marker.group(1), []) if marker else plain).append(name)
    return plain, extras


def test_the_core_declares_no_integration_plotting_or_tiktoken_dependency():
    from importlib.metadata import requires, version

    plain, extras = _requirements()
    assert not {"langchain-core", "langchain", "matplotlib", "tiktoken"} & set(plain)
    assert extras["plots"] == ["matplotlib"] and extras["tiktoken"] == ["tiktoken"]
    assert {"pytest", "pytest-asyncio", "pytest-benchmark", "ruff"} <= set(extras["dev"])
    peft = next(r for r in requires("lift-memory") if r.startswith("peft"))
    assert ">=0.18" in peft  # ensure_weight_tying
    assert version("lift-memory") == lift_memory.__version__  # one version string
    integration = next(r for r in requires("langchain-lift") if r.startswith("lift-memory"))
    assert "<0.2" in integration and ">=0.1.0" in integration


_CORE_ALONE = """
import sys

class Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"langchain_core", "langchain", "langgraph", "matplotlib", "tiktoken"}:
            raise ImportError(f"{name} is not installed here")

sys.meta_path.insert(0, Blocked())
sys.path.append(sys.argv[2])
import lift_memory
from lift_test_helpers import TEXT, HashEmbedder
from lift_memory.config import MemoryConfig, TrainConfig
from lift_memory.eval.niah.report import write_report

assert lift_memory.__file__.startswith(sys.argv[1]), lift_memory.__file__
memory = lift_memory.LiftMemory(MemoryConfig(train=TrainConfig(max_steps=2)), root=sys.argv[3], model=sys.argv[4],
                                embedder=HashEmbedder(), progress=False)
record = memory.memorize(TEXT, doc_id="proverbs")
answer = memory.ask("What saves nine?", "proverbs", max_new_tokens=4)
rows = [{"length": 1024, "depth": 0.5, "method": "rag", "score": 1.0}]
report = write_report(rows, sys.argv[3] + "/niah")
print(record.trained, answer.route, report["images"])
"""


@pytest.mark.slow
def test_the_core_installs_alone_into_a_fresh_venv_and_works_without_the_extras(tmp_path, tiny_model_dir):
    import site
    from pathlib import Path

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    repo = Path(__file__).resolve().parents[1]
    import shutil

    source = tmp_path / "source"  # built from a copy: a build leaves build/ beside its sources
    shutil.copytree(repo / "lift_memory", source / "lift_memory", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(repo / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    built = subprocess.run(
        [*pip, "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next((tmp_path / "dist").glob("lift_memory-*.whl"))
    subprocess.run([*pip, "--python", str(python), "install", "--quiet", "--no-deps", str(wheel)], check=True)
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    # The dependencies come from this environment's site-packages, added after the fresh install's own.
    (Path(purelib) / "deps.pth").write_text(site.getsitepackages()[0] + "\n")
    done = subprocess.run(
        [str(python), "-c", _CORE_ALONE, purelib, str(repo / "tests"), str(tmp_path / "mem"), str(tiny_model_dir)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-3:] == ["True", "hybrid", "[]"] and "lift-memory[plots]" in done.stderr
