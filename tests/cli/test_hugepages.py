"""The model's weights in huge pages (desktop.hugepages): when the command restarts itself
with glibc's tunable, when it does not, and that comparators get the user's environment."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from huge_pages import SKIP_REASON, TUNABLE_WORKS_HERE, loaded_chat

from desktop import hugepages
from desktop.cli import VALUED_OPTIONS, build_parser, command_word


@pytest.mark.parametrize(("env", "platform", "glibc", "thp", "reason"), [
    ({}, "linux", (2, 36), "madvise", None),
    ({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, "linux", (2, 41), "madvise", None),
    ({}, "darwin", None, None, "not Linux"),
    ({}, "linux", None, "madvise", "needs glibc 2.35 or later"),  # musl
    ({}, "linux", (2, 31), "madvise", "needs glibc 2.35 or later"),
    ({}, "linux", (2, 36), "never", "the kernel's transparent huge pages are off"),
    ({}, "linux", (2, 36), None, "the kernel's transparent huge pages are off"),
    ({}, "linux", (2, 36), "always",
     "the kernel gives large allocations huge pages without asking"),
    ({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=0"}, "linux", (2, 36),
     "madvise", "GLIBC_TUNABLES sets glibc.malloc.hugetlb=0"),
])
def test_when_the_restart_would_help(env, platform, glibc, thp, reason):
    assert hugepages.reason_not_needed(env, platform, glibc, thp) == reason


@pytest.mark.parametrize(("text", "setting"), [
    ("always [madvise] never\n", "madvise"),
    ("[always] madvise never\n", "always"),
    ("always madvise [never]\n", "never"),
])
def test_the_kernels_setting_is_the_bracketed_word(tmp_path, text, setting):
    (tmp_path / "enabled").write_text(text)
    assert hugepages.thp_setting(tmp_path / "enabled") == setting
    assert hugepages.thp_setting(tmp_path / "absent") is None


@pytest.mark.parametrize(("env", "expected"), [
    ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1", hugepages.BEFORE: "", "PATH": "/bin"},
     {"PATH": "/bin"}),
    ({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1",
      hugepages.BEFORE: "glibc.malloc.arena_max=2"},
     {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}),
    # set by the user, not by the restart: theirs to keep
    ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}, {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}),
])
def test_comparators_get_the_environment_the_user_started_with(env, expected):
    assert hugepages.user_environment(env) == expected


@pytest.mark.parametrize(("argv", "word"), [
    ([], None),
    (["--debug"], None),
    (["--model", "chat"], None),  # a model named like a command is still the window
    (["--data-dir", "d", "serve", "--port", "0"], "serve"),
    (["--data-dir=d", "bench"], "bench"),
    (["history", "list"], "history"),
    (["export", "--help"], "export"),
])
def test_the_command_word_is_found_without_parsing(argv, word):
    assert command_word(argv) == word


def test_the_options_skipped_with_their_value_are_the_main_parsers():
    """command_word knows which options before the command take a value; a new one added to
    the parser must be added there too."""
    valued = {option for action in build_parser()._actions if action.option_strings
              and action.nargs != 0 for option in action.option_strings}
    assert valued == VALUED_OPTIONS


#: Runs the ``onnxchat`` entry and, at exit, prints what GLIBC_TUNABLES the process ran with.
PROBE = """
import atexit, json, os, sys
atexit.register(lambda: print("TUNABLES " + json.dumps(os.environ.get("GLIBC_TUNABLES")),
                              file=sys.stderr))
from desktop.cli import run
sys.exit(run())
"""


def tunables_of(*args: str, env: dict[str, str]) -> str | None:
    result = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True,
                            text=True, timeout=300, env=env, check=False)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines and lines[-1].startswith("TUNABLES "), result.stderr
    return json.loads(lines[-1].removeprefix("TUNABLES "))


@pytest.mark.skipif(not TUNABLE_WORKS_HERE, reason=SKIP_REASON)
def test_only_commands_that_run_a_model_restart_with_the_tunable(default_model, tmp_path):
    env = {**hugepages.user_environment(), "ONNXCHAT_DATA_DIR": str(tmp_path),
           "ONNXCHAT_MODELS_DIR": str(default_model.parent),
           "GLIBC_TUNABLES": "glibc.malloc.arena_max=4"}
    chat = ("chat", "--model", str(default_model), "--prompt", "Hi", "--max-new-tokens", "1",
            "--device", "cpu", "--no-history")
    assert tunables_of(*chat, env=env) == "glibc.malloc.arena_max=4:glibc.malloc.hugetlb=1"
    for args in (["models"], ["history", "list"], ["--version"], ["chat", "--help"]):
        assert tunables_of(*args, env=env) == "glibc.malloc.arena_max=4", args
    # the user's own setting of the tunable is left as it is
    env["GLIBC_TUNABLES"] = "glibc.malloc.hugetlb=0"
    assert tunables_of(*chat, env=env) == "glibc.malloc.hugetlb=0"


@pytest.mark.skipif(not TUNABLE_WORKS_HERE, reason=SKIP_REASON)
def test_a_model_process_holds_its_weights_in_huge_pages(default_model, tmp_path):
    """The terminal chat with the default model loaded: most of its ~130 MB of packed weights
    lie in 2 MiB pages; none do with the tunable turned off. (The folder's graph, as it runs
    where its Q4_1 offsets are not folded: the folded copy maps its packed weights from the
    cache file instead, desktop/engine/folding.py.)"""
    env = {**hugepages.user_environment(), "ONNXCHAT_DATA_DIR": str(tmp_path),
           "PYTHONUNBUFFERED": "1", "ONNXCHAT_FOLD_OFFSETS": "0"}
    argv = [sys.executable, "-m", "desktop", "chat", "--model", str(default_model), "--device",
            "cpu", "--no-history", "--max-new-tokens", "1", "--temperature", "0"]
    env.pop("GLIBC_TUNABLES", None)
    assert loaded_chat(argv, env)[0] >= 64
    assert loaded_chat(argv, {**env, "GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}) == (
        0, "glibc.malloc.hugetlb=0")


@pytest.mark.parametrize(("thp", "tunables", "state"), [
    ("madvise", "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1",
     "2 MiB pages (glibc.malloc.hugetlb=1)"),
    ("madvise", "glibc.malloc.hugetlb=0",
     "4 KiB pages (GLIBC_TUNABLES sets glibc.malloc.hugetlb=0)"),
    ("madvise", None, "4 KiB pages (not restarted)"),
    ("always", None, "2 MiB pages (the kernel's setting)"),
    ("never", "glibc.malloc.hugetlb=1",
     "4 KiB pages (the kernel's transparent huge pages are off)"),
])
def test_the_report_says_what_the_memory_is_in(monkeypatch, thp, tunables, state):
    monkeypatch.setattr(hugepages, "thp_setting", lambda: thp)
    monkeypatch.setattr(hugepages, "glibc_version", lambda: (2, 36))
    monkeypatch.setattr(hugepages.sys, "platform", "linux")
    if tunables is None:
        monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    else:
        monkeypatch.setenv("GLIBC_TUNABLES", tunables)
    assert hugepages.page_state() == state


@pytest.mark.skipif(not TUNABLE_WORKS_HERE, reason=SKIP_REASON)
def test_a_restart_that_cannot_happen_is_one_line_and_the_command_goes_on(tmp_path):
    code = ("import sys; sys.executable = '/nonexistent/python'; "
            "from desktop.cli import run; sys.exit(run())")
    env = {**hugepages.user_environment(), "ONNXCHAT_DATA_DIR": str(tmp_path)}
    env.pop("GLIBC_TUNABLES", None)
    result = subprocess.run([sys.executable, "-c", code, "chat", "--temperature", "hot"],
                            capture_output=True, text=True, timeout=120, env=env, check=False)
    first, *rest = result.stderr.splitlines()
    assert first == ("onnxchat: note: could not restart with the weights in huge pages ([Errno 2] "
                     "No such file or directory: '/nonexistent/python'); running with ordinary "
                     "pages")
    # then the command itself ran: here, its parser refusing the option
    assert result.returncode == 2 and "--temperature" in rest[-1], result.stderr
    assert "Traceback" not in result.stderr
