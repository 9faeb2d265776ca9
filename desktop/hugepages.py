"""The model's weights in 2 MiB pages on Linux: the process restarts itself once with glibc's
``glibc.malloc.hugetlb=1`` tunable.

Why: a decode step reads every weight once, and a model of a few hundred megabytes or more
spans hundreds of thousands of 4 KiB pages, far more than the processor's address-translation
caches hold; in 2 MiB pages it spans a few hundred. (That translation is what the pages change;
this machine's counters are not exposed, so its cost was measured as speed, not as misses.)
ONNX Runtime allocates the weights (and prepacks them) with the C library's ``malloc``; glibc
2.35 and later back its large allocations with transparent huge pages when the
``glibc.malloc.hugetlb=1`` tunable is set — but tunables are read once, as the process starts.
So :func:`restart_with_huge_pages` re-executes the command once with the tunable added, before
anything heavy is imported (the cost of one interpreter start-up). Measured on the README's
machine (models/README.md, "CPU decode speed"): the 1B-shaped benchmark model decodes ×1.07
faster; the default model's difference is within the machine's drift; resident memory +2 %.

Nothing is done, and :func:`page_state` says why, when: the system is not Linux with glibc
2.35+; the kernel's transparent huge pages are ``never`` (none to get) or ``always`` (large
allocations get them without asking); or ``GLIBC_TUNABLES`` already names the tunable — the
user's own choice, which is also how to turn this off (``GLIBC_TUNABLES=glibc.malloc.hugetlb=0``).

The tunable is inherited by child processes. Programs started as comparators (the benchmark's
llama.cpp) get the environment the user started OnnxChat with: :func:`user_environment`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

TUNABLE = "glibc.malloc.hugetlb"
#: The kernel's setting for anonymous memory: ``always [madvise] never``, the current one bracketed.
THP_SETTING = Path("/sys/kernel/mm/transparent_hugepage/enabled")
#: Set by the restart: GLIBC_TUNABLES as the user had it ("" when unset), for comparators.
BEFORE = "ONNXCHAT_GLIBC_TUNABLES_BEFORE"
#: glibc's first release with the tunable.
FIRST_GLIBC = (2, 35)
#: :func:`system_reason` when the kernel gives huge pages without being asked.
KERNEL_ALWAYS = "the kernel gives large allocations huge pages without asking"


def glibc_version() -> tuple[int, int] | None:
    """This process's glibc as (major, minor); None on another C library or system."""
    try:
        text = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (AttributeError, ValueError, OSError):
        return None
    name, _, version = text.partition(" ")
    parts = version.split(".")
    if name != "glibc" or len(parts) < 2 or not all(p.isdigit() for p in parts[:2]):
        return None
    return int(parts[0]), int(parts[1])


def thp_setting(path: Path = THP_SETTING) -> str | None:
    """The kernel's transparent huge page setting (``always``, ``madvise`` or ``never``);
    None where the kernel has no such setting."""
    try:
        text = path.read_text()
    except OSError:
        return None
    start, end = text.find("["), text.find("]")
    return text[start + 1:end] if 0 <= start < end else None


def reason_not_needed(env: Mapping[str, str], platform: str, glibc: tuple[int, int] | None,
                      thp: str | None) -> str | None:
    """Why the restart would add nothing (a phrase for :func:`page_state`); None when it
    would put the weights in huge pages."""
    setting = tunable_setting(env)
    return system_reason(platform, glibc, thp) or (
        f"GLIBC_TUNABLES sets {setting}" if setting else None)


def system_reason(platform: str, glibc: tuple[int, int] | None, thp: str | None) -> str | None:
    """Why this system gives no huge pages through the tunable (or needs none); None when it
    does."""
    if platform != "linux":
        return "not Linux"
    if glibc is None or glibc < FIRST_GLIBC:
        return "needs glibc 2.35 or later"
    if thp is None or thp == "never":
        return "the kernel's transparent huge pages are off"
    if thp == "always":
        return KERNEL_ALWAYS
    return None


def tunable_setting(env: Mapping[str, str]) -> str | None:
    """The tunable as ``GLIBC_TUNABLES`` sets it (``glibc.malloc.hugetlb=0`` …), or None."""
    own = [t for t in env.get("GLIBC_TUNABLES", "").split(":") if t.startswith(TUNABLE + "=")]
    return own[-1] if own else None


def restart_with_huge_pages() -> None:
    """Re-execute this command with the tunable added, when it would help (see the module
    docstring); returns only when it does not restart. Call it first thing in the process."""
    if reason_not_needed(os.environ, sys.platform, glibc_version(), thp_setting()):
        return
    before = os.environ.get("GLIBC_TUNABLES", "")
    env = dict(os.environ, GLIBC_TUNABLES=f"{before}:{TUNABLE}=1" if before else f"{TUNABLE}=1")
    env[BEFORE] = before
    # A frozen app is its own executable; otherwise the interpreter with its original flags.
    argv = [sys.executable, *sys.argv[1:]] if getattr(sys, "frozen", False) else sys.orig_argv
    try:
        os.execve(sys.executable, argv, env)
    except OSError as exc:
        print(f"onnxchat: note: could not restart with the weights in huge pages ({exc}); "
              "running with ordinary pages", file=sys.stderr)


def page_state() -> str:
    """What this process's large allocations are backed with, and why, for reports."""
    system = system_reason(sys.platform, glibc_version(), thp_setting())
    if system == KERNEL_ALWAYS:
        return "2 MiB pages (the kernel's setting)"
    if system:
        return f"4 KiB pages ({system})"
    setting = tunable_setting(os.environ)
    if setting == f"{TUNABLE}=1":
        return f"2 MiB pages ({setting})"
    return f"4 KiB pages ({f'GLIBC_TUNABLES sets {setting}' if setting else 'not restarted'})"


def user_environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's) as the user started OnnxChat: without the tunable
    the restart added."""
    result = dict(os.environ if env is None else env)
    if BEFORE in result:
        before = result.pop(BEFORE)
        if before:
            result["GLIBC_TUNABLES"] = before
        else:
            result.pop("GLIBC_TUNABLES", None)
    return result
