"""Chat template rendering speed: OnnxChat's sandboxed renderer against transformers.

Not a test (speed is never asserted). Run from the repository root:

    python tests/bench_templates.py [--runs 7] [--sizes 2,6,200,20000] [--json]

For every real template in tests/engine/templates/ and each conversation size it times
``ChatTemplate.render`` and transformers' ``render_jinja_template`` (what
``apply_chat_template(..., tokenize=False)`` runs) on the same messages, interleaved run by
run, and prints the medians and their ratio (OnnxChat time / transformers time; below 1 is
faster). Templates are compiled once before timing, as both renderers cache the compiled
template.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

from chat_templates import FAMILIES, Family, long_conversation  # noqa: E402
from transformers.utils.chat_template_utils import render_jinja_template  # noqa: E402

from desktop.engine.template import ChatTemplate, TemplateError  # noqa: E402


def _timed(render, repeat: int) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        render()
    return (time.perf_counter() - started) / repeat


def bench(family: Family, size: int, runs: int) -> dict[str, object]:
    messages = long_conversation(size)
    try:
        ours = ChatTemplate(family.source, bos_token=family.bos_token, eos_token=family.eos_token)
    except TemplateError as exc:
        return {"template": family.name, "messages": size, "ours_failed": str(exc)[:60]}

    def render_ours() -> str:
        return ours.render(messages)

    def render_theirs() -> str:
        rendered, _ = render_jinja_template(
            conversations=[messages], chat_template=family.source, add_generation_prompt=True,
            bos_token=family.bos_token, eos_token=family.eos_token)
        return rendered[0]

    try:
        reference = render_theirs()
    except Exception:  # Gemma 2 has no system role: the same conversation without it
        messages = messages[1:]
        try:
            reference = render_theirs()
        except Exception as exc:
            return {"template": family.name, "messages": size, "skipped": str(exc)[:60]}
    try:
        same = render_ours() == reference
    except TemplateError as exc:
        return {"template": family.name, "messages": size, "ours_failed": str(exc)[:60]}
    repeat = max(1, 2000 // size)
    mine, theirs = [], []
    for _ in range(runs):
        theirs.append(_timed(render_theirs, repeat))
        mine.append(_timed(render_ours, repeat))
    ours_s, theirs_s = statistics.median(mine), statistics.median(theirs)
    return {"template": family.name, "messages": len(messages), "chars": len(reference),
            "identical": same, "onnxchat_ms": round(ours_s * 1e3, 3),
            "transformers_ms": round(theirs_s * 1e3, 3), "ratio": round(ours_s / theirs_s, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--sizes", default="2,6,200,20000")
    parser.add_argument("--only", help="comma-separated template names")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    families = [f for f in FAMILIES if not args.only or f.name in args.only.split(",")]
    rows = [bench(f, size, args.runs) for f in families for size in sizes]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    for row in rows:
        if "ratio" in row:
            print(f"{row['template']:32} {row['messages']:>6} msgs {row['chars']:>9,} chars  "
                  f"onnxchat {row['onnxchat_ms']:>9.3f} ms  transformers "
                  f"{row['transformers_ms']:>9.3f} ms  ratio {row['ratio']:>5.2f}"
                  f"{'' if row['identical'] else '  DIFFERENT'}")
        else:
            print(f"{row['template']:32} {row['messages']:>6} msgs  "
                  f"{row.get('skipped') or row.get('ours_failed')}")
    ratios = [row["ratio"] for row in rows if "ratio" in row]
    if ratios:
        print(f"ratio onnxchat/transformers: median {statistics.median(ratios):.2f}, "
              f"min {min(ratios):.2f}, max {max(ratios):.2f} over {len(ratios)} cases")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
