"""``onnxchat models``: the installed models with the columns of the window's model list
(family, parameters, recipe, disk use) and their validation figures; with ``--verify``, every
file checked against its manifest. Reads manifests only: no ONNX Runtime."""

from __future__ import annotations

import argparse
import json

from desktop.engine import list_models, verify_files
from desktop.model_folders import model_facts, size_text
from desktop.paths import model_dirs


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("models", help="list installed models")
    parser.add_argument("--verify", action="store_true",
                        help="recompute every file's sha256 against the manifest")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    models = list_models()
    if not models:
        where = ", ".join(str(d) for d in model_dirs())
        print(f"no models installed (searched {where}); "
              "prepare the default one with `onnxchat export default`")
        return 0
    rows, failed = [], False
    for entry in models:
        m = entry.manifest
        facts = model_facts(entry)
        row = {"name": entry.name, "path": str(entry.path), "problem": entry.problem,
               "family": facts.family, "parameters": facts.parameters,
               "parameters_text": facts.parameters_text, "disk_bytes": facts.disk.total}
        if m is not None:
            v = m.validation
            row |= {"recipe": m.recipe, "size_mb": round(m.size_bytes / 1e6, 1),
                    "perplexity_ratio": v.get("perplexity_ratio"),
                    "top1_agreement": v.get("top1_agreement"), "passed": v.get("passed")}
            if args.verify:
                problems = verify_files(m)
                row["verified"] = not problems
                if problems:
                    row["problem"] = "; ".join(problems)
        failed |= bool(row["problem"])
        rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"{'name':<28} {'family':<9} {'params':>6}  {'recipe':<10} {'disk':>8}  quality")
        for r in rows:
            if r.get("recipe"):
                ratio = r["perplexity_ratio"]
                top1 = r["top1_agreement"]
                quality = (f"ppl ×{ratio:.3f}, top-1 {top1:.1%}" if isinstance(ratio, float)
                           and isinstance(top1, float) else "not validated")
                status = "" if r.get("passed", True) else " (failed validation, kept with --force)"
                verified = {True: ", files verified", False: ""}.get(r.get("verified"), "")
                print(f"{r['name']:<28} {r['family']:<9} {r['parameters_text']:>6}  "
                      f"{r['recipe']:<10} {size_text(r['disk_bytes']):>8}  "
                      f"{quality}{status}{verified}\n  {r['path']}")
            if r["problem"]:
                print(f"  problem: {r['problem']}")
    return 1 if failed else 0
