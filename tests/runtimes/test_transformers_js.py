"""transformers.js in Node.js loads an exported folder offline, tokenizes like ``tokenizers``
and answers greedily with the same tokens as OnnxChat.

The pinned package (tests/runtimes/node/package-lock.json) is installed once into
``models/.cache/node-*``; without Node.js and npm these tests are skipped.
"""

from __future__ import annotations

import json
import subprocess

import pytest
from tokenizers import Tokenizer

pytestmark = pytest.mark.node



def test_transformers_js_greedy_and_tokenizer_equal_onnxchat(
    case, reference, texts, node_script, tmp_path
):
    ref = reference(case)
    assert "transformers.js" in ref.manifest["targets"]
    request = tmp_path / "request.json"
    request.write_text(
        json.dumps(
            {"prompt": ref.prompt_text, "max_new_tokens": len(ref.tokens), "texts": texts}
        ),
        encoding="utf-8",
    )
    result = subprocess.run(
        ["node", str(node_script), str(ref.folder), str(request)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])

    assert answer["prompt_ids"] == ref.prompt_ids
    assert ref.cut(answer["generated_ids"]) == ref.tokens
    plain = Tokenizer.from_file(str(ref.folder / "tokenizer.json"))
    for text, got in zip(texts, answer["texts"], strict=True):
        assert got["ids"] == plain.encode(text, add_special_tokens=False).ids, text
        assert got["decoded"] == text
