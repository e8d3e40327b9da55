from __future__ import annotations

import subprocess
import sys

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
