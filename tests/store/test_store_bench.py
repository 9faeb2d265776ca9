"""The benchmark function works (its figures are reported by the benchmark command)."""

from desktop.store.bench import bench_open_conversation


def test_bench_open_conversation_reports_times() -> None:
    result = bench_open_conversation(n_messages=300, repeats=3)
    assert result["n_messages"] == 300 and result["repeats"] == 3
    assert 0 < result["min_s"] <= result["median_s"] <= result["max_s"]
