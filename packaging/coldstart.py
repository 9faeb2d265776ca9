"""Start-up figures of the packaged app: how long until it answers, and until its window shows.

    python packaging/coldstart.py [--bundle dist/onnxchat-0.1.0-linux-x86_64] [--runs 5]
                                  [--drop-caches]

Every run uses a clean environment and an empty home (no chats, first start). Measured:

* ``--version``: process start to exit; the bootloader, Python and the CLI parser.
* ``window``: process start until the main window is mapped on an X server (Xvfb, started
  here), i.e. visible to the user; the app keeps running and is then closed.
* ``--self-test``: an offscreen start that loads the bundled model, generates a short greedy
  reply and stores a conversation; process start to exit 0.

The first run of each is printed apart from the median of the others: the first one reads the
bundle from disk, the others from the page cache. ``--drop-caches`` (Linux, root) empties the
page cache before every first run, which is what a start after boot sees.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bundle_layout as layout

WINDOW_TIMEOUT_S = 120


def drop_page_cache() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def timed_exit(executable: Path, args: list[str]) -> float:
    """Seconds from start to a zero exit of the frozen app, in a fresh empty home."""
    with tempfile.TemporaryDirectory(prefix="onnxchat-start-") as home:
        start = time.perf_counter()
        result = subprocess.run([str(executable), *args], env=layout.clean_env(Path(home)),
                                cwd=home, capture_output=True, text=True, timeout=600,
                                check=False)
        elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"`onnxchat {' '.join(args)}` exited {result.returncode}: "
                         f"{result.stderr.strip()}")
    return elapsed


def _window_mapped(display: str) -> bool:
    """Whether a top-level window of the app (WM_CLASS onnxchat/OnnxChat) is viewable."""
    tree = subprocess.run(["xwininfo", "-display", display, "-root", "-tree"],
                          capture_output=True, text=True, check=False).stdout
    for line in tree.splitlines():
        if '("onnxchat" "OnnxChat")' in line:
            info = subprocess.run(["xwininfo", "-display", display, "-id", line.split()[0]],
                                  capture_output=True, text=True, check=False).stdout
            if "IsViewable" in info:
                return True
    return False


def timed_window(executable: Path, display: str) -> float:
    """Seconds from start until the main window is viewable on ``display``."""
    with tempfile.TemporaryDirectory(prefix="onnxchat-start-") as home:
        env = layout.clean_env(Path(home)) | {"DISPLAY": display, "QT_QPA_PLATFORM": "xcb"}
        start = time.perf_counter()
        app = subprocess.Popen([str(executable)], env=env, cwd=home,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            while not _window_mapped(display):
                if app.poll() is not None:
                    raise SystemExit(f"the window exited {app.returncode} before showing: "
                                     f"{app.stderr.read().strip() if app.stderr else ''}")
                if time.perf_counter() - start > WINDOW_TIMEOUT_S:
                    raise SystemExit(f"no window after {WINDOW_TIMEOUT_S} s")
                time.sleep(0.02)
            return time.perf_counter() - start
        finally:
            app.send_signal(signal.SIGTERM)
            try:
                app.wait(timeout=10)
            except subprocess.TimeoutExpired:
                app.kill()
                app.wait()


class XServer:
    """A private Xvfb display for the window measurement. ``-noreset``: the polling clients
    come and go, and a server that resets when its last client leaves refuses the app's
    connection meanwhile."""

    def __init__(self) -> None:
        if not shutil.which("Xvfb") or not shutil.which("xwininfo"):
            raise SystemExit("the window figure needs Xvfb and xwininfo "
                             "(apt-get install xvfb x11-utils), or pass --no-window")
        read, write = os.pipe()
        command = ["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x800x24",
                   "-nolisten", "tcp", "-noreset"]
        self.process = subprocess.Popen(command, pass_fds=(write,), stderr=subprocess.DEVNULL)
        os.close(write)
        with os.fdopen(read) as pipe:
            self.display = f":{pipe.readline().strip()}"

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def measure(label: str, runs: int, once: Callable[[], float], drop: bool) -> dict[str, float]:
    if drop:
        drop_page_cache()
    first = once()
    rest = [once() for _ in range(runs - 1)]
    figures = {"first_s": round(first, 2)}
    if rest:
        figures["median_s"] = round(statistics.median(rest), 2)
    text = f"first {first:.2f} s" + (f", then median {figures['median_s']:.2f} s over "
                                      f"{len(rest)} runs" if rest else "")
    print(f"{label:<12} {text}", flush=True)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, default=layout.DIST / layout.bundle_name(),
                        help="the unpacked one-folder app (default: the last build)")
    parser.add_argument("--runs", type=int, default=5, help="runs of each measurement")
    parser.add_argument("--drop-caches", action="store_true",
                        help="empty the page cache before each first run (Linux, root)")
    parser.add_argument("--no-window", dest="window", action="store_false",
                        help="skip the window figure (no X server tools)")
    args = parser.parse_args(argv)
    executable = args.bundle / layout.APP
    if not executable.is_file():
        print(f"coldstart.py: error: {executable} is missing; run `make package` first",
              file=sys.stderr)
        return 1
    print(f"{args.bundle.name}, {args.runs} runs each, clean environment, empty home")
    measure("--version", args.runs, lambda: timed_exit(executable, ["--version"]),
            args.drop_caches)
    if args.window:
        server = XServer()
        try:
            measure("window", args.runs, lambda: timed_window(executable, server.display),
                    args.drop_caches)
        finally:
            server.close()
    measure("--self-test", max(1, min(args.runs, 3)),
            lambda: timed_exit(executable, ["--self-test"]), args.drop_caches)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
