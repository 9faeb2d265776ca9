"""``onnxchat bench --templates``: chat template rendering time against transformers.

For every ``.jinja`` template in a folder (by default the real templates of the supported
families in a source checkout's ``tests/engine/templates``) and each conversation size, it
times :meth:`ChatTemplate.render` and transformers' ``render_jinja_template`` (what
``apply_chat_template(..., tokenize=False)`` runs) on the same messages, interleaved run by
run, and reports the medians and their ratio (OnnxChat time / transformers time; below 1 is
faster) and whether the two texts are identical. Both renderers cache the compiled template,
so each is compiled once before timing. Speed is never asserted anywhere: this is the
measurement.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from desktop.engine.template import ChatTemplate, TemplateError
from desktop.errors import UserError

#: The real templates of a source checkout (test data under their models' licenses, so they
#: are not part of the installed package).
CHECKOUT_TEMPLATES = Path(__file__).resolve().parents[1] / "tests" / "engine" / "templates"
#: In a template folder: file name → {"bos_token": …, "eos_token": …} its tokenizer defines.
SPECIAL_TOKENS_FILE = "special_tokens.json"
DEFAULT_SIZES = "2,6,200,20000"
#: Renders per timed run are about this many messages in all, so small sizes are not noise.
MESSAGES_PER_RUN = 2000

SYSTEM = {"role": "system", "content": "You are a helpful assistant. Answer briefly."}


def long_conversation(count: int) -> list[dict[str, str]]:
    """``count`` ordinary messages: a system prompt, then alternating user/assistant turns,
    ending on a user turn."""
    messages = [SYSTEM]
    for i in range(count - 1):
        if i % 2 == 0:
            messages.append({"role": "user",
                             "content": f"Question {i}: what should I see in Paris on day {i}?"})
        else:
            messages.append({"role": "assistant",
                             "content": f"On day {i}, visit a museum, then walk by the Seine."})
    if messages[-1]["role"] == "assistant":
        messages[-1] = {"role": "user", "content": "Thanks, one more idea please?"}
    return messages


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--templates`` options of ``onnxchat bench`` (``--runs`` and ``--json`` are
    shared with its other modes)."""
    parser.add_argument("--templates", action="store_true",
                        help="instead, time chat template rendering against transformers' "
                             "apply_chat_template (needs the export extra)")
    parser.add_argument("--template-dir",
                        help="with --templates: a folder of .jinja templates, special tokens "
                             f"in its {SPECIAL_TOKENS_FILE} (default: tests/engine/templates "
                             "of a source checkout)")
    parser.add_argument("--only", default="",
                        help="with --templates: comma-separated template names (file names "
                             "without .jinja)")
    parser.add_argument("--messages", default=DEFAULT_SIZES,
                        help=f"with --templates: comma-separated conversation sizes "
                             f"(default {DEFAULT_SIZES})")


def run_template_bench(args: argparse.Namespace) -> int:
    """Time every chosen template at every size; exit 1 if OnnxChat fails to render one that
    transformers renders, or renders it differently."""
    try:
        from transformers.utils.chat_template_utils import render_jinja_template
    except ImportError:
        raise UserError("--templates compares with transformers, which is in the export "
                        "extra: pip install 'onnxchat[export]'") from None
    import transformers

    if args.runs < 1:
        raise UserError("--runs must be at least 1")
    try:
        sizes = [int(s) for s in args.messages.split(",")]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise UserError(f"--messages '{args.messages}' is not a comma-separated list of sizes "
                        "of at least 1, e.g. 6,200")
    folder = Path(args.template_dir) if args.template_dir else CHECKOUT_TEMPLATES
    templates, tokens = _templates(folder, [n for n in args.only.split(",") if n])
    rows = [_bench_one(name, source, tokens.get(f"{name}.jinja", {}), size, args.runs,
                       render_jinja_template)
            for name, source in templates.items() for size in sizes]
    ratios = [row["ratio"] for row in rows if "ratio" in row]
    report: dict[str, Any] = {
        "workload": {"template_dir": str(folder), "templates": len(templates),
                     "messages": sizes, "runs": args.runs,
                     "special_tokens": (folder / SPECIAL_TOKENS_FILE).is_file(),
                     "transformers": transformers.__version__},
        "results": rows,
        "ratio": {"median": round(statistics.median(ratios), 2), "min": min(ratios),
                  "max": max(ratios), "cases": len(ratios)} if ratios else None,
    }
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        _print_table(report)
    return 1 if any("failed" in row or row.get("identical") is False for row in rows) else 0


def _templates(folder: Path, only: list[str]) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """The folder's templates by name and its special tokens by file name."""
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder of chat templates; pass --template-dir DIR "
                        "(a source checkout has tests/engine/templates)")
    files = {p.name.removesuffix(".jinja"): p for p in sorted(folder.glob("*.jinja"))}
    unknown = [name for name in only if name not in files]
    if unknown:
        raise UserError(f"no template '{unknown[0]}' in {folder}; there are: "
                        f"{', '.join(files) or 'none'}")
    if not files:
        raise UserError(f"{folder} has no .jinja chat templates")
    tokens_path = folder / SPECIAL_TOKENS_FILE
    try:
        tokens = json.loads(tokens_path.read_text(encoding="utf-8")) if tokens_path.is_file() \
            else {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{tokens_path} cannot be read ({exc}); fix or remove it") from None
    chosen = {name: path.read_text(encoding="utf-8") for name, path in files.items()
              if not only or name in only}
    return chosen, tokens


def _timed(render: Callable[[], str], repeat: int) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        render()
    return (time.perf_counter() - started) / repeat


def _bench_one(name: str, source: str, tokens: dict[str, str], size: int, runs: int,
               render_jinja_template: Callable[..., Any]) -> dict[str, Any]:
    """One template at one size: both renderers timed run by run, or why it was not timed
    (``skipped``: transformers refuses the conversation; ``failed``: OnnxChat cannot render
    what transformers renders)."""
    bos, eos = tokens.get("bos_token", ""), tokens.get("eos_token", "")
    messages = long_conversation(size)
    row: dict[str, Any] = {"template": name, "messages": size}
    try:
        ours = ChatTemplate(source, bos_token=bos, eos_token=eos)
    except TemplateError as exc:
        return row | {"failed": str(exc)}

    def render_theirs() -> str:
        rendered, _ = render_jinja_template(
            conversations=[messages], chat_template=source, add_generation_prompt=True,
            bos_token=bos, eos_token=eos)
        return str(rendered[0])

    try:
        reference = render_theirs()
    except Exception:  # Gemma 2 has no system role: the same turns without it
        messages = messages[1:]
        try:
            reference = render_theirs()
        except Exception as exc:  # transformers refuses this conversation
            return row | {"skipped": f"transformers refuses it: {exc}"}
    row["messages"] = len(messages)
    try:
        same = ours.render(messages) == reference
    except TemplateError as exc:
        return row | {"failed": str(exc)}
    repeat = max(1, MESSAGES_PER_RUN // size)
    mine: list[float] = []
    theirs: list[float] = []
    for _ in range(runs):  # interleaved, so drifting load touches both alike
        theirs.append(_timed(render_theirs, repeat))
        mine.append(_timed(lambda: ours.render(messages), repeat))
    ours_s, theirs_s = statistics.median(mine), statistics.median(theirs)
    return row | {"chars": len(reference), "identical": same,
                  "onnxchat_ms": round(ours_s * 1e3, 3),
                  "transformers_ms": round(theirs_s * 1e3, 3),
                  "ratio": round(ours_s / theirs_s, 2)}


def _print_table(report: dict[str, Any]) -> None:
    w = report["workload"]
    print(f"{w['templates']} templates from {w['template_dir']} against transformers "
          f"{w['transformers']}, median of {w['runs']} runs"
          f"{'' if w['special_tokens'] else f' (no {SPECIAL_TOKENS_FILE}: empty BOS/EOS)'}")
    for row in report["results"]:
        if "ratio" in row:
            print(f"{row['template']:32} {row['messages']:>6} msgs {row['chars']:>9,} chars  "
                  f"onnxchat {row['onnxchat_ms']:>9.3f} ms  transformers "
                  f"{row['transformers_ms']:>9.3f} ms  ratio {row['ratio']:>5.2f}"
                  f"{'' if row['identical'] else '  DIFFERENT'}")
        else:
            why = f"FAILED: {row['failed']}" if "failed" in row else row["skipped"]
            print(f"{row['template']:32} {row['messages']:>6} msgs  {why}")
    ratio = report["ratio"]
    if ratio:
        print(f"ratio onnxchat/transformers: median {ratio['median']:.2f}, min "
              f"{ratio['min']:.2f}, max {ratio['max']:.2f} over {ratio['cases']} cases")
