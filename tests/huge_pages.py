"""Reading how much of a live process's memory lies in huge pages, for the tests of
desktop.hugepages (the pip install's command and the packaged app)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from desktop import hugepages

#: Whether glibc's tunable gives a process huge pages on this system (see desktop.hugepages).
TUNABLE_WORKS_HERE = hugepages.reason_not_needed(
    hugepages.user_environment(), sys.platform, hugepages.glibc_version(),
    hugepages.thp_setting()) is None
SKIP_REASON = "this system gives no huge pages through glibc's tunable"


def anon_huge_pages_mb(pid: int) -> float:
    """The process's anonymous memory in transparent huge pages, in MiB."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("AnonHugePages:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no AnonHugePages line for process {pid}")


def loaded_chat(argv: Sequence[str], env: dict[str, str], cwd: Path | None = None
                ) -> tuple[float, str]:
    """Start the terminal chat (``argv``) and, once its first line says which model runs on
    which device (the model is loaded), read its huge pages and its GLIBC_TUNABLES; then ask
    it one thing and end it."""
    process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)
    try:
        assert " on CPU" in process.stdout.readline(), process.stderr.read()
        environ = Path(f"/proc/{process.pid}/environ").read_bytes().split(b"\0")
        tunables = next((v.split(b"=", 1)[1].decode() for v in environ
                         if v.startswith(b"GLIBC_TUNABLES=")), "")
        return anon_huge_pages_mb(process.pid), tunables
    finally:
        with contextlib.suppress(BrokenPipeError):
            process.stdin.write("Hi\n")
            process.stdin.close()
        process.wait(timeout=60)
