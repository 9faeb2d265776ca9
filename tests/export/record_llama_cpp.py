"""Record what llama.cpp gives for the files the tests check OnnxChat's exports against.

- The small vocabulary GGUFs of the tokenizer tests: llama.cpp's ``tokenize`` ids for each
  text (``data/llama_cpp/ids.json``).
- The default model's GGUF: its token ids for the validation text and its negative
  log-likelihood over them (``data/llama_cpp/default_model.json``), which the default
  model's export must match (tokens exactly, NLL within the gate's 5 %).

llama-cpp-python compiles llama.cpp (10–25 minutes on two cores), so ``make test`` does not
install it: the recording is kept in the repository, and where llama-cpp-python is installed
the tests (and the export's own gate) also run the live llama.cpp. Run this after changing
the vocabularies, the texts or the default model (needs the ``bench`` extra):

    python tests/export/record_llama_cpp.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from export.files import sha256_file  # noqa: E402
from export.llama_cpp_reference import reference  # noqa: E402
from export.sources import default_gguf_path  # noqa: E402
from tests.export.test_gguf_tokenizer import (  # noqa: E402
    RECORDED,
    VOCAB_DIR,
    recorded_cases,
    write_vocabularies,
)

DEFAULT_MODEL = VOCAB_DIR / "default_model.json"
VALIDATION_TEXT = HERE.parent.parent / "export" / "data" / "validation.txt"


def main() -> int:
    import llama_cpp

    write_vocabularies(VOCAB_DIR)
    ids: dict[str, dict[str, list[int]]] = {}
    for name, texts in recorded_cases().items():
        llm = llama_cpp.Llama(model_path=str(VOCAB_DIR / name), vocab_only=True, verbose=False)
        ids[name] = {text: llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
                     for text in texts}
    RECORDED.write_text(json.dumps({"llama_cpp_python": llama_cpp.__version__, "ids": ids},
                                   ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"recorded {sum(len(v) for v in ids.values())} texts of {len(ids)} vocabularies "
          f"with llama-cpp-python {llama_cpp.__version__} in {RECORDED}")

    gguf, text = default_gguf_path(), VALIDATION_TEXT.read_text(encoding="utf-8")
    llm = llama_cpp.Llama(model_path=str(gguf), vocab_only=True, verbose=False)
    tokens = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
    answer = reference(gguf, text, [tokens], threads=2)
    DEFAULT_MODEL.write_text(json.dumps({
        "llama_cpp_python": llama_cpp.__version__,
        "gguf_sha256": sha256_file(gguf),
        "text_sha256": sha256_file(VALIDATION_TEXT),
        "nll": answer["nll"],
        "predictions": answer["predictions"],
        "tokens": answer["tokens"],
    }) + "\n", encoding="utf-8")
    print(f"recorded the default model's {len(tokens)} tokens and NLL "
          f"{answer['nll'] / answer['predictions']:.4f} per token in {DEFAULT_MODEL}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
