"""Bad input: one line on stderr that says what is wrong and what to do, a non-zero exit,
no traceback, and nothing left in the models folder."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import export.pipeline
from export.cli import main
from export.errors import ExportError, ValidationFailedError
from export.pipeline import ExportSettings, export_model
from export.sources import check_name, default_gguf_path, resolve_source
from export.validation import ValidationGate

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "models"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    """One ``python -m export: error:`` line, last; before it at most the step lines of the
    progress display."""
    assert code != 0
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("python -m export: error: "), err
    assert all(re.match(r"\[\d/5\] ", line) for line in lines[:-1]), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[-1], lines[-1]


def assert_nothing_left(out: Path) -> None:
    assert not out.exists() or list(out.iterdir()) == []


def copy_without(src: Path, dst: Path, *names: str) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(*names))
    return dst


def test_missing_folder(capsys: pytest.CaptureFixture[str], out: Path, tmp_path: Path) -> None:
    code, err = run(capsys, str(tmp_path / "no-such-model"), "--out", str(out))
    assert_one_line_error(code, err, "No such model folder or file", "`default`")
    assert_nothing_left(out)


def test_missing_gguf_file(capsys: pytest.CaptureFixture[str], out: Path, tmp_path: Path) -> None:
    code, err = run(capsys, str(tmp_path / "model.gguf"), "--out", str(out))
    assert_one_line_error(code, err, "No such file", "model.gguf")
    assert_nothing_left(out)


def test_folder_without_tokenizer(
    capsys: pytest.CaptureFixture[str], out: Path, tmp_path: Path, tiny_gpt2_hf: Path
) -> None:
    folder = copy_without(tiny_gpt2_hf, tmp_path / "no-tokenizer", "tokenizer*", "special*")
    code, err = run(capsys, str(folder), "--out", str(out))
    assert_one_line_error(code, err, "has no tokenizer", "copy the model's tokenizer files")
    assert_nothing_left(out)


def test_folder_without_config(
    capsys: pytest.CaptureFixture[str], out: Path, tmp_path: Path, tiny_gpt2_hf: Path
) -> None:
    folder = copy_without(tiny_gpt2_hf, tmp_path / "no-config", "config.json")
    code, err = run(capsys, str(folder), "--out", str(out))
    assert_one_line_error(code, err, "no config.json", "not a Hugging Face model folder")
    assert_nothing_left(out)


def test_folder_with_truncated_weights(
    capsys: pytest.CaptureFixture[str], out: Path, tmp_path: Path, tiny_llama_hf: Path
) -> None:
    folder = copy_without(tiny_llama_hf, tmp_path / "cut")
    with (folder / "model.safetensors").open("r+b") as weights:
        weights.truncate(3000)
    code, err = run(capsys, str(folder), "--out", str(out))
    assert_one_line_error(code, err, f"Could not load {folder}: ",
                          "Check that the model files are complete.")
    assert_nothing_left(out)


@pytest.mark.parametrize("model_type", ["bert", "frobnicator"])
def test_unknown_architecture(
    capsys: pytest.CaptureFixture[str],
    out: Path,
    tmp_path: Path,
    tiny_gpt2_hf: Path,
    model_type: str,
) -> None:
    folder = copy_without(tiny_gpt2_hf, tmp_path / model_type)
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = model_type
    (folder / "config.json").write_text(json.dumps(config))
    code, err = run(capsys, str(folder), "--out", str(out))
    assert_one_line_error(code, err, f"Unsupported architecture '{model_type}'", "decoder-only")
    assert_nothing_left(out)


def test_garbage_gguf(capsys: pytest.CaptureFixture[str], out: Path, tmp_path: Path) -> None:
    path = tmp_path / "garbage.gguf"
    path.write_bytes(os.urandom(4096))
    code, err = run(capsys, str(path), "--out", str(out))
    assert_one_line_error(code, err, "not a valid GGUF file", "download or copy it again")
    assert_nothing_left(out)


@pytest.mark.parametrize("size", [64, 4096, 3_000_000])
def test_truncated_gguf(
    capsys: pytest.CaptureFixture[str], out: Path, tmp_path: Path, size: int
) -> None:
    """The default model's real header, cut short inside the metadata or the tensor table."""
    path = tmp_path / "truncated.gguf"
    with default_gguf_path().open("rb") as source:
        path.write_bytes(source.read(size))
    code, err = run(capsys, str(path), "--out", str(out))
    assert_one_line_error(code, err, "not a valid GGUF file (truncated or corrupt)")
    assert_nothing_left(out)


def test_hub_id_offline(
    capsys: pytest.CaptureFixture[str], out: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    code, err = run(capsys, "some-org/some-model", "--out", str(out))
    assert_one_line_error(
        code, err, "'some-org/some-model'", "a local model folder, a .gguf file, or `default`"
    )
    assert_nothing_left(out)


def test_a_file_that_is_not_a_model(
    capsys: pytest.CaptureFixture[str], out: Path, tmp_path: Path
) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a model")
    code, err = run(capsys, str(path), "--out", str(out))
    assert_one_line_error(code, err, "not a .gguf model")
    assert_nothing_left(out)


@pytest.mark.parametrize("name", [".hidden", "modèle"])
def test_a_name_that_cannot_be_a_model_folder_is_refused(
    capsys: pytest.CaptureFixture[str], out: Path, tiny_gpt2_hf: Path, name: str
) -> None:
    code, err = run(capsys, str(tiny_gpt2_hf), "--name", name, "--out", str(out))
    assert_one_line_error(code, err, f"Invalid model name '{name}': use up to 100 ASCII letters")
    assert_nothing_left(out)


#: File stems whose default names reach the longest a name may be.
LONG_STEMS = ("Llama-3.2-1B-Instruct-" + "x" * 128, "a" * 99 + "-" + "b" * 50, "Ünïcode " * 20)


@pytest.mark.parametrize("stem", LONG_STEMS)
def test_a_long_file_name_gives_a_default_name_the_export_takes(tmp_path: Path,
                                                                stem: str) -> None:
    """A GGUF file's long stem becomes a name of at most 100 characters (the export used to
    refuse the name it had made itself)."""
    path = tmp_path / f"{stem}.gguf"
    path.write_bytes(b"GGUF")
    name = resolve_source(str(path)).default_name()
    assert check_name(name) == name and len(name) <= 100


def test_existing_folder_refused_then_overwritten(
    capsys: pytest.CaptureFixture[str], out: Path, tiny_gpt2_hf: Path
) -> None:
    existing = out / "tiny"
    existing.mkdir(parents=True)
    (existing / "marker").write_text("old")
    args = [str(tiny_gpt2_hf), "--quant", "fp32", "--name", "tiny", "--out", str(out)]
    code, err = run(capsys, *args)
    assert_one_line_error(code, err, "already exists", "--overwrite")
    assert (existing / "marker").read_text() == "old"

    code, err = run(capsys, *args, "--overwrite")
    assert code == 0, err
    assert not (existing / "marker").exists()
    assert (existing / "manifest.json").is_file()
    assert sorted(p.name for p in out.iterdir()) == ["tiny"]


def test_disk_full_while_publishing(
    capsys: pytest.CaptureFixture[str],
    out: Path,
    tiny_gpt2_hf: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def full_disk(model_dir: Path, target: Path, overwrite: bool) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))

    monkeypatch.setattr(export.pipeline, "publish", full_disk)
    code, err = run(capsys, str(tiny_gpt2_hf), "--quant", "fp32", "--out", str(out))
    assert_one_line_error(code, err, "The disk is full", "free space on the disk")
    assert_nothing_left(out)


def test_interrupt_leaves_nothing(
    capsys: pytest.CaptureFixture[str],
    out: Path,
    tiny_gpt2_hf: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def interrupted(hf_dir: Path, out_dir: Path) -> Path:
        assert any(p.name.startswith(".") for p in out.iterdir())  # the partial folder
        raise KeyboardInterrupt

    monkeypatch.setattr(export.pipeline, "export_onnx", interrupted)
    code, err = run(capsys, str(tiny_gpt2_hf), "--out", str(out))
    assert code == 130
    assert_one_line_error(code, err, "Interrupted")
    assert_nothing_left(out)


def test_debug_shows_the_traceback(
    capsys: pytest.CaptureFixture[str], out: Path, tmp_path: Path
) -> None:
    code, err = run(capsys, str(tmp_path / "missing"), "--out", str(out), "--debug")
    assert code == 2
    assert "Traceback" in err and "No such model folder" in err


def test_failed_gate_refuses_unless_forced(out: Path, tiny_gpt2_hf: Path) -> None:
    impossible = ValidationGate(min_top1_agreement=1.01)
    settings = ExportSettings(source=str(tiny_gpt2_hf), out_dir=out, gate=impossible)
    with pytest.raises(ValidationFailedError) as failure:
        export_model(settings)
    message = str(failure.value)  # auto tried int8, int8 with an fp32 LM head, then fp32
    assert message.startswith("No recipe passed the quality gate (tried int8: ")
    assert "top-1 agreement 1.000 < 1.01" in message and "\n" not in message
    assert "--force" in message
    assert_nothing_left(out)

    settings.force = True
    result = export_model(settings)
    manifest = json.loads((result.path / "manifest.json").read_text())
    assert manifest["validation"]["passed"] is False
    assert manifest["validation"]["forced"] is True
    assert "FAILED (kept with --force)" in (result.path / "validation_report.md").read_text()


def test_subprocess_bad_input_is_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "export", str(tmp_path / "nothing"), "--out", str(tmp_path / "m")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip().count("\n") == 0
    assert done.stderr.startswith("python -m export: error: No such model folder or file")
    assert not (tmp_path / "m").exists()


def test_progress_json_reports_the_error(
    capsys: pytest.CaptureFixture[str], out: Path, tmp_path: Path
) -> None:
    code = main([str(tmp_path / "missing"), "--out", str(out), "--progress-json"])
    captured = capsys.readouterr()
    assert code == 2
    (record,) = [json.loads(line) for line in captured.out.splitlines()]
    assert record["error"].startswith("No such model folder or file")


def test_disk_full_reported_by_native_code(
    capsys: pytest.CaptureFixture[str],
    out: Path,
    tiny_gpt2_hf: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """torch and protobuf report a full disk as a RuntimeError carrying the system message."""

    def full_disk(hf_dir: Path, out_dir: Path) -> Path:
        raise RuntimeError(f"[enforce fail] write failed: {os.strerror(errno.ENOSPC)}")

    monkeypatch.setattr(export.pipeline, "export_onnx", full_disk)
    code, err = run(capsys, str(tiny_gpt2_hf), "--out", str(out))
    assert_one_line_error(code, err, "The disk is full")
    assert_nothing_left(out)


def test_a_folder_too_large_for_fp32_here_is_refused_before_any_work(tiny_llama_hf: Path,
                                                                     out: Path) -> None:
    """The fp32 route holds the whole model in fp32: a model whose fp32 weights exceed the
    machine's memory is refused at once, with what would work (here the machine's memory
    is set below the tiny model's size)."""
    settings = ExportSettings(source=str(tiny_llama_hf), out_dir=out, memory_bytes=100_000)
    with pytest.raises(ExportError) as refused:
        export_model(settings)
    line = str(refused.value)
    assert "\n" not in line
    assert line.startswith(f"The model folder {tiny_llama_hf} has ")
    assert " GB in fp32, and exporting it this way holds the whole model in fp32: more than " \
        "this machine's 0.0 GB of memory." in line
    assert "convert_hf_to_gguf.py" in line
    assert_nothing_left(out)


def test_a_large_gguf_with_a_recipe_that_needs_fp32_is_told_the_recipes_that_do_not(
        tiny_llama_gguf: Path, out: Path) -> None:
    settings = ExportSettings(source=str(tiny_llama_gguf), recipe="int8", out_dir=out,
                              memory_bytes=1000)
    with pytest.raises(ExportError, match=r"tiny-llama\.gguf has .* GB in fp32, .* more than "
                       r"this machine's 0\.0 GB of memory\. Export it with the auto or q4-gguf "
                       r"recipe"):
        export_model(settings)
    assert_nothing_left(out)


def test_onnxchat_export_names_itself_in_its_errors(out: Path, tmp_path: Path) -> None:
    """Run as ``onnxchat export`` (as the README shows it), a usage error and a failed export
    name that command, not ``python -m export``, as every other command's errors do."""
    done = subprocess.run(
        [sys.executable, "-m", "desktop", "export", "default", "--quant", "nope",
         "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("usage: onnxchat export ")
    assert done.stderr.splitlines()[-1].startswith(
        "onnxchat export: error: argument --quant: invalid choice: 'nope'")
    assert not out.exists()
    failed = subprocess.run(
        [sys.executable, "-m", "desktop", "export", str(tmp_path / "nothing"), "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )
    assert failed.returncode == 2 and failed.stdout == ""
    assert failed.stderr.startswith("onnxchat export: error: No such model folder or file")
    assert failed.stderr.count("\n") == 1
    assert not out.exists()
