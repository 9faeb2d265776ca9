"""The benchmark (also against the local server) and the soak run end to end and report
(figures are never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from huge_pages import TUNABLE_WORKS_HERE


def onnxchat(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "desktop", *args], capture_output=True,
                           text=True, timeout=timeout, check=False)


def test_bench_reports_every_figure_as_json(default_model):
    result = onnxchat("bench", "--model", str(default_model), "--device", "cpu", "--runs", "1",
                      "--prompt-tokens", "16", "--new-tokens", "4", "--json", "--history")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["workload"]["prompt_tokens"] == 16
    ours = report["results"][0]
    for key in ("load_s", "prefill_tok_s", "decode_tok_s", "ttft_turn1_ms", "ttft_turn10_ms",
                "peak_rss_mb", "model_size_mb"):
        assert ours[key] > 0, key
    # the default model's int8-cache graph runs beside it, interleaved
    int8 = next(row for row in report["results"] if row["runtime"] == "onnxchat-int8kv")
    assert int8["prefill_tok_s"] > 0 and int8["decode_tok_s"] > 0
    assert report["history"]["n_messages"] == 10_000
    commits = report["history"]["reply_commits"]
    assert commits["commit_interval_s"] <= 0.2
    assert [row["reply_chars"] for row in commits["lengths"]] == [1_000, 16_000, 64_000, 256_000]
    assert all(row["commit_ms"] > 0 for row in commits["lengths"])
    assert report["history"]["recording"]["decode_tok_s_kept"] > 0
    # what each step reads: the default model's cache after 16 + 4 / 2 positions (30 layers,
    # keys and values, 3 heads of 64) in fp32 and int8, the int8 graph's weights more by its
    # value rotations (30 × (192² + 64²) floats)
    floor = {row["runtime"]: row for row in report["memory_floor"]["rows"]}
    assert set(floor) == {"onnxchat", "onnxchat-int8kv"}
    values = 30 * 2 * 3 * 64 * 18
    assert floor["onnxchat"]["cache_mb"] == round(values * 4 / 1e6, 1)
    assert floor["onnxchat-int8kv"]["cache_mb"] == round(values / 1e6, 1)
    assert floor["onnxchat-int8kv"]["weights_mb"] == pytest.approx(
        floor["onnxchat"]["weights_mb"] + 30 * (192**2 + 64**2) * 4 / 1e6, abs=0.11)
    assert all(row["reading_alone_tok_s"] > 0 and row["measured_tok_s"] > 0
               for row in floor.values())
    # the command restarted itself with the weights in huge pages where the system allows
    pages = report["machine"]["onnxchat_pages"]
    if TUNABLE_WORKS_HERE:
        assert pages == "2 MiB pages (glibc.malloc.hugetlb=1)"
    else:
        assert pages.startswith(("2 MiB pages (the kernel's setting)", "4 KiB pages (")), pages


def test_bench_measures_both_caches_at_long_context(default_model):
    result = onnxchat("bench", "--model", str(default_model), "--device", "cpu", "--runs", "1",
                      "--prompt-tokens", "8", "--new-tokens", "2", "--long-context", "64",
                      "--json")
    assert result.returncode == 0, result.stderr
    long = json.loads(result.stdout)["long_context"]
    assert long["context_tokens"] == 64
    assert set(long["prefill_tok_s"]) == set(long["decode_tok_s"]) == {"onnxchat",
                                                                       "onnxchat-int8kv"}


def test_bench_of_the_int8_cache_alone(default_model):
    result = onnxchat("bench", "--model", str(default_model), "--kv-cache", "int8", "--runs",
                      "1", "--prompt-tokens", "8", "--new-tokens", "2", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["workload"]["graph"] == "onnx/model_int8kv.onnx"
    assert report["workload"]["device"].startswith("CPU")
    assert [row["runtime"] for row in report["results"]] == ["onnxchat (q4-gguf)"]


def test_bench_table_for_people(default_model):
    result = onnxchat("bench", "--model", str(default_model), "--device", "cpu", "--runs", "1",
                      "--prompt-tokens", "8", "--new-tokens", "2")
    assert result.returncode == 0, result.stderr
    assert "decode tok/s" in result.stdout and "time to first token" in result.stdout


def test_bench_refuses_an_unknown_comparator_in_one_line(default_model):
    result = onnxchat("bench", "--model", str(default_model), "--compare", "vllm")
    assert result.returncode == 2
    assert result.stderr.strip() == ("onnxchat: error: unknown comparator 'vllm'; use: "
                                     "llama-cpp, transformers")


def test_soak_runs_and_reports_memory(default_model):
    result = onnxchat("soak", "--model", str(default_model), "--device", "cpu", "--turns", "3",
                      "--replies", "2", "--long-reply", "16", "--switches", "2")
    report = json.loads(result.stdout)
    # The memory verdicts are figures of this machine's allocator, not asserted here; the exit
    # status must follow them.
    verdicts = (report["repeated_replies"]["ok"], report["model_switches"]["ok"])
    assert result.returncode == (0 if all(verdicts) else 1), result.stderr
    assert report["overflow_turns"]["turns"] == 3
    assert report["repeated_replies"]["rss_end_mb"] > 0
    assert report["model_switches"]["switches"] == 2
    assert report["long_reply"]["generated"] <= 16


def test_bench_measures_the_local_server(default_model):
    result = onnxchat("bench", "--server", "--model", str(default_model), "--device", "cpu",
                      "--clients", "2", "--requests", "2", "--new-tokens", "4", "--json")
    assert result.returncode == 0, result.stderr
    server = json.loads(result.stdout)["server"]
    assert server["clients"] == 2 and server["requests"] == 4
    assert 0 < server["ttft_ms"]["p50"] <= server["ttft_ms"]["p95"]
    assert 0 < server["completion_tokens"] <= 16
    assert server["total_tokens_per_s"] > 0


def test_bench_times_chat_templates_against_transformers():
    result = onnxchat("bench", "--templates", "--only", "gemma-2-2b-it,qwen3-0.6b",
                      "--messages", "6", "--runs", "1", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["workload"]["messages"] == [6] and report["workload"]["special_tokens"]
    rows = {row["template"]: row for row in report["results"]}
    assert set(rows) == {"gemma-2-2b-it", "qwen3-0.6b"}
    # Gemma 2 refuses a system message: it is timed on the same turns without it.
    assert rows["gemma-2-2b-it"]["messages"] == 5 and rows["qwen3-0.6b"]["messages"] == 6
    for row in rows.values():
        assert row["identical"] is True
        assert {"chars", "onnxchat_ms", "transformers_ms", "ratio"} <= set(row)
    assert report["ratio"]["cases"] == 2


def without(module: str, *args: str) -> subprocess.CompletedProcess:
    """``onnxchat ARGS`` with ``module`` blocked as if it were not installed (a None entry in
    ``sys.modules`` makes its import fail)."""
    code = (f"import sys; sys.modules[{module!r}] = None; from desktop.cli import main; "
            f"raise SystemExit(main({list(args)!r}))")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)


def test_bench_templates_without_transformers_names_the_extra():
    result = without("transformers", "bench", "--templates")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "onnxchat: error: --templates compares with transformers, which is in the export "
        "extra: pip install 'onnxchat[export]'")


def test_bench_against_llama_cpp_without_gguf_names_the_extra():
    # gguf counts the bytes llama.cpp's step reads
    result = without("gguf", "bench", "--compare", "llama-cpp")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "onnxchat: error: --compare llama-cpp needs llama-cpp-python built for this CPU, and "
        "gguf to count its bytes: CMAKE_ARGS=-DGGML_NATIVE=ON pip install 'onnxchat[bench]'")


def test_bench_export_size_reports_export_and_load_figures(tmp_path):
    """``--export-size`` builds, exports and loads a random Llama (tiny here; 1b and 7b are
    the measured ones) and reports every figure; its files are gone afterwards."""
    result = onnxchat("bench", "--export-size", "tiny", "--export-dir", str(tmp_path),
                      "--threads", "1", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["shape"] == "tiny"
    assert report["export"]["seconds"] > 0 and report["export"]["peak_rss_mb"] > 0
    assert report["export"]["onnx_size_mb"] > 0
    assert "Exported tiny" in report["export"]["last_line"]
    for load in report["load"].values():
        assert load["load_s"] > 0 and load["after_step"]["rss_mb"] > 0
    assert list(tmp_path.iterdir()) == []
