"""Record llama.cpp's token ids for the small vocabulary GGUFs the tokenizer tests use.

The tests compare the tokenizer OnnxChat rebuilds from a GGUF header with llama.cpp's own
``tokenize`` on the same file. llama-cpp-python compiles llama.cpp (10–25 minutes on two
cores), so ``make test`` does not install it; the vocabulary files and llama.cpp's ids for
them are kept in ``tests/export/data/llama_cpp/`` instead, and where llama-cpp-python is
installed the tests check the recording against it too. Run this after changing the
vocabularies or the texts (needs the ``bench`` extra):

    python tests/export/record_llama_cpp.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from tests.export.test_gguf_tokenizer import (  # noqa: E402
    RECORDED,
    VOCAB_DIR,
    recorded_cases,
    write_vocabularies,
)


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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
