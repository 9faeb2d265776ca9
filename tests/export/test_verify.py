"""The manifest's sha256 and size table catches damaged and edited model folders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from export.verify import main, verify_folder


@pytest.fixture
def copy(tiny_gpt2_model: Path, tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(tiny_gpt2_model, target)
    return target


def test_intact_copy_verifies(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert verify_folder(copy) == []
    assert main([str(copy)]) == 0


def test_wrong_sha256_in_manifest_is_detected(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest_path = copy / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["onnx/model.onnx"]["sha256"] = "0" * 64
    manifest_path.write_text(json.dumps(manifest))
    assert verify_folder(copy) == ["wrong sha256: onnx/model.onnx"]
    assert main([str(copy)]) == 1
    assert "wrong sha256: onnx/model.onnx" in capsys.readouterr().err


def test_same_size_edit_is_detected(copy: Path) -> None:
    path = copy / "onnx" / "model.onnx"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    assert verify_folder(copy) == ["wrong sha256: onnx/model.onnx"]


def test_truncated_and_missing_files_are_detected(copy: Path) -> None:
    (copy / "tokenizer.json").write_text("{}")
    (copy / "genai_config.json").unlink()
    assert verify_folder(copy) == [
        "missing file: genai_config.json",
        f"wrong size: tokenizer.json (2 bytes, manifest says "
        f"{json.loads((copy / 'manifest.json').read_text())['files']['tokenizer.json']['size']})",
    ]


def test_folder_without_manifest(tmp_path: Path) -> None:
    assert verify_folder(tmp_path) == [f"{tmp_path} has no manifest.json"]
