"""Build the packaged app (``make package``): a PyInstaller one-folder bundle and its archive.

Steps: render the icons, run PyInstaller on ``onnxchat.spec``, add the Linux desktop
integration beside the executable, check the bundle (no export-only or test packages, the
default model in place), smoke-test the frozen executable in a clean environment, archive it
with a ``.sha256`` beside it, and print the sizes. ``dist/<name>.build.json`` records the
figures and a fingerprint of the inputs, so the bundle test can reuse a fresh build.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bundle_layout as layout
from bundle_icons import render_icons

DIST = layout.DIST
WORK = layout.REPO / "build" / "pyinstaller"
MODEL = layout.REPO / "models" / layout.DEFAULT_MODEL
SMOKE_TIMEOUT_S = 300


class BuildError(Exception):
    """A build step failed; the message says what and what to do."""


# ---------------------------------------------------------------------------- inputs


def _input_files() -> Iterator[Path]:
    for root in (layout.REPO / "desktop", layout.PACKAGING):
        for path in sorted(root.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                yield path
    yield layout.REPO / "pyproject.toml"
    yield MODEL / "manifest.json"  # lists every model file's sha256


def fingerprint(cuda: bool = False) -> str:
    """A hash of everything the bundle is made from, and of the tools that make it."""
    import PyInstaller

    digest = hashlib.sha256()
    digest.update(f"{sys.version}|PyInstaller {PyInstaller.__version__}|cuda={cuda}".encode())
    for path in _input_files():
        digest.update(str(path.relative_to(layout.REPO)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def record_path(dist: Path = DIST, cuda: bool = False) -> Path:
    return dist / f"{layout.bundle_name(cuda)}.build.json"


def fresh_build(dist: Path = DIST, cuda: bool = False) -> dict | None:
    """The build record if ``dist`` holds a complete build of the current inputs, else None."""
    record = record_path(dist, cuda)
    if not record.is_file():
        return None
    info = json.loads(record.read_text(encoding="utf-8"))
    complete = (dist / info["folder"]).is_dir() and (dist / info["archive"]).is_file()
    return info if complete and info["fingerprint"] == fingerprint(cuda) else None


def ensure_x11_libraries() -> None:
    """Linux: the bundle carries the libraries Qt's X11 plugin needs, so this machine must have
    them. As root on Debian or Ubuntu the missing ones are installed; otherwise one line says
    which and how."""
    from desktop.ui.platform_check import (
        debian_packages,
        install_advice,
        missing_libraries,
        pyside_plugin_dir,
    )

    folder = pyside_plugin_dir()
    if folder is None:
        raise BuildError("PySide6 is not installed: run `make setup` first")
    plugin = folder / "platforms" / "libqxcb.so"
    missing = missing_libraries(plugin)
    if missing and os.geteuid() == 0 and shutil.which("apt-get") and debian_packages(missing):
        packages = debian_packages(missing)
        print(f"Installing {' '.join(packages)}: Qt's X11 plugin needs them and the bundle "
              "carries them")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", *packages], env=env, check=False,
                       stdout=subprocess.DEVNULL)
        missing = missing_libraries(plugin)
    if missing:
        raise BuildError(f"the bundle must carry the libraries Qt's X11 plugin needs and this "
                         f"machine lacks {', '.join(missing)}; {install_advice(missing)}, then "
                         "build again")


def check_model() -> None:
    manifest = MODEL / "manifest.json"
    if not manifest.is_file():
        raise BuildError(f"{MODEL} is missing: run `make model` first (`make package` does)")
    validation = json.loads(manifest.read_text(encoding="utf-8")).get("validation", {})
    if not validation.get("passed"):
        raise BuildError(f"{MODEL} did not pass its validation gate; re-export it with "
                         "`make model` before shipping it")


# ---------------------------------------------------------------------------- build


def run_pyinstaller(icons: Path, dist: Path, work: Path, cuda: bool) -> Path:
    """Run the spec; return the one-folder bundle."""
    command = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
               "--distpath", str(dist), "--workpath", str(work),
               str(layout.PACKAGING / "onnxchat.spec"), "--", "--icons", str(icons)]
    if cuda:
        command.append("--cuda")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    result = subprocess.run(command, env=env, cwd=layout.REPO, check=False)
    if result.returncode != 0:
        raise BuildError(f"PyInstaller failed (exit {result.returncode}); see its output above")
    if sys.platform == "darwin":
        return dist / "OnnxChat.app"
    return dist / layout.bundle_name(cuda)


def add_desktop_integration(folder: Path, icons: Path) -> None:
    """Linux: the menu entry, the icon theme files and the (un)install scripts at the top of
    the folder, next to the executable, laid out as they go under ``~/.local/share``."""
    share = folder / "share"
    (share / "applications").mkdir(parents=True, exist_ok=True)
    shutil.copy2(layout.PACKAGING / "linux" / "onnxchat.desktop", share / "applications")
    for size in layout.ICON_SIZES:
        target = share / "icons" / "hicolor" / f"{size}x{size}" / "apps"
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(icons / f"onnxchat-{size}.png", target / "onnxchat.png")
    scalable = share / "icons" / "hicolor" / "scalable" / "apps"
    scalable.mkdir(parents=True, exist_ok=True)
    shutil.copy2(icons / "onnxchat.svg", scalable / "onnxchat.svg")
    for script in ("install.sh", "uninstall.sh", "README.txt"):
        shutil.copy2(layout.PACKAGING / "linux" / script, folder / script)


# ---------------------------------------------------------------------------- checks


def archived_modules(executable: Path) -> list[str]:
    """Names of the Python modules and scripts inside the executable's archive."""
    from PyInstaller.archive.readers import pkg_archive_contents

    return pkg_archive_contents(str(executable), recursive=True)


def forbidden_parts(contents: Path, executable: Path) -> list[str]:
    """Every module or file in the bundle that belongs to a forbidden package."""
    found = {f"module {name}" for name in archived_modules(executable)
             if name.split(".")[0] in layout.FORBIDDEN}
    for path in contents.iterdir():
        if layout.is_forbidden(path.name):
            found.add(f"file {path.name}")
    return sorted(found)


def largest_parts(folder: Path, count: int = 15) -> list[tuple[str, int]]:
    """The ``count`` largest files, as paths relative to the folder, biggest first."""
    sizes = [(str(p.relative_to(folder)), p.stat().st_size)
             for p in folder.rglob("*") if p.is_file() and not p.is_symlink()]
    return sorted(sizes, key=lambda item: -item[1])[:count]


def component_sizes(folder: Path) -> list[tuple[str, int]]:
    """Total size per top-level entry of the contents folder (packages, libraries, models)."""
    contents = folder / layout.CONTENTS_DIR
    totals: dict[str, int] = {}
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            rel = path.relative_to(contents).parts[0] if contents in path.parents else "(top)"
            totals[rel] = totals.get(rel, 0) + path.stat().st_size
    return sorted(totals.items(), key=lambda item: -item[1])


def glibc_floor(folder: Path) -> str | None:
    """Linux: the newest glibc symbol version a bundled ELF file asks for, i.e. the oldest
    glibc the app starts on (set by the build machine and the wheels)."""
    newest: tuple[int, int] | None = None
    for path in folder.rglob("*"):
        if not path.is_file() or path.is_symlink() or "models" in path.relative_to(folder).parts:
            continue
        with path.open("rb") as f:
            if f.read(4) != b"\x7fELF":
                continue
        for match in re.finditer(rb"GLIBC_2\.(\d+)", path.read_bytes()):
            version = (2, int(match.group(1)))
            newest = max(newest or version, version)
    return f"{newest[0]}.{newest[1]}" if newest else None


def unresolved_libraries(contents: Path) -> list[str]:
    """Linux: libraries the window's platform plugins need that neither the bundle nor this
    machine has (the user's system must provide them; see packaging/README.md)."""
    plugins = contents / "PySide6" / "Qt" / "plugins" / "platforms"
    env = dict(os.environ, LD_LIBRARY_PATH=str(contents))
    missing: set[str] = set()
    for plugin in sorted(plugins.glob("*.so")):
        out = subprocess.run(["ldd", str(plugin)], env=env, capture_output=True, text=True,
                             check=False).stdout
        missing |= {line.split()[0] for line in out.splitlines() if "not found" in line}
    return sorted(missing)


def x11_libraries_outside(contents: Path) -> list[str]:
    """Linux: libraries the bundled X11 plugin would take from outside the bundle (or not find)
    although they are not on the base-system list (``BASE_SYSTEM_LIBS``)."""
    plugin = contents / "PySide6" / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    env = dict(os.environ, LD_LIBRARY_PATH=str(contents))  # what the bootloader sets
    inside = contents.resolve()
    return [name for name, path in layout.ldd(plugin, env)
            if not layout.BASE_SYSTEM_LIBS.match(name)
            and (path is None or inside not in Path(path).resolve().parents)]


def tree_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def run_frozen(executable: Path, args: list[str], home: Path,
               timeout: float = SMOKE_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(executable), *args], env=layout.clean_env(home), cwd=home,
                          capture_output=True, text=True, timeout=timeout, check=False)


def has_self_test() -> bool:
    """The window's ``--self-test`` exists once ``desktop/ui/selftest.py`` does."""
    return (layout.REPO / "desktop" / "ui" / "selftest.py").is_file()


def smoke_test(executable: Path, contents: Path) -> dict[str, float]:
    """Run the frozen app the way a user would, in an empty home; return wall times."""
    times: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="onnxchat-smoke-") as tmp:
        home = Path(tmp)

        def check(label: str, args: list[str]) -> str:
            start = time.perf_counter()
            try:
                result = run_frozen(executable, args, home)
            except subprocess.TimeoutExpired:
                raise BuildError(f"the frozen `onnxchat {' '.join(args)}` did not finish in "
                                 f"{SMOKE_TIMEOUT_S} s") from None
            times[label] = round(time.perf_counter() - start, 2)
            if result.returncode != 0:
                raise BuildError(f"the frozen `onnxchat {' '.join(args)}` exited "
                                 f"{result.returncode}:\n{result.stdout}{result.stderr}")
            return result.stdout

        version = check("version", ["--version"]).strip()
        if version != f"onnxchat {layout.version()}":
            raise BuildError(f"the frozen app reports {version!r}, not {layout.version()}")
        rows = json.loads(check("models", ["models", "--verify", "--json"]))
        bundled = [r for r in rows if r["name"] == layout.DEFAULT_MODEL
                   and Path(r["path"]).resolve() == (contents / "models" / r["name"]).resolve()]
        if not bundled or not bundled[0].get("verified"):
            raise BuildError(f"the frozen app does not list its bundled, verified model: {rows}")
        if has_self_test():
            check("self_test", ["--self-test"])
        else:
            reply = check("chat", ["chat", "--prompt", "Hi", "--temperature", "0",
                                   "--max-new-tokens", "8"])
            if not reply.strip():
                raise BuildError("the frozen app's one-shot chat printed no reply")
        start = time.perf_counter()
        serve_check(executable, home)
        times["serve"] = round(time.perf_counter() - start, 2)
    return times


def serve_check(executable: Path, home: Path) -> None:
    """The frozen ``onnxchat serve`` listens on loopback, completes a prompt over HTTP, and
    stops on SIGTERM: its web stack (starlette, uvicorn, loaded by name) is in the bundle."""
    process = subprocess.Popen([str(executable), "serve", "--port", "0", "--status-json"],
                               env=layout.clean_env(home), cwd=home, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    first: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: first.put(process.stdout.readline()), daemon=True).start()
    try:
        try:
            url = json.loads(first.get(timeout=SMOKE_TIMEOUT_S))["url"]
        except (queue.Empty, json.JSONDecodeError, KeyError):
            process.kill()
            raise BuildError("the frozen `onnxchat serve` did not start:\n"
                             f"{process.communicate()[1][-2000:]}") from None
        request = urllib.request.Request(
            url + "/completions", headers={"Content-Type": "application/json"},
            data=json.dumps({"prompt": "1, 2, 3,", "max_tokens": 4, "temperature": 0}).encode())
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=SMOKE_TIMEOUT_S) as response:
            text = json.load(response)["choices"][0]["text"]
        if not text.strip():
            raise BuildError("the frozen `onnxchat serve` completed a prompt with no text")
    finally:
        if process.poll() is None:
            process.terminate()
        code = process.wait(timeout=60)
    if code != 0 and os.name == "posix":  # Windows has no SIGTERM: terminate() kills
        raise BuildError(f"the frozen `onnxchat serve` exited {code} on SIGTERM")


# ---------------------------------------------------------------------------- archive


def write_archive(folder: Path, name: str) -> Path:
    """``<name>.tar.gz`` (``.zip`` on Windows) of the folder, and ``<archive>.sha256``."""
    if sys.platform == "win32":
        archive = folder.with_name(name + ".zip")
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
            for path in sorted(folder.rglob("*")):
                zf.write(path, path.relative_to(folder.parent))
    else:
        archive = folder.with_name(name + ".tar.gz")
        with tarfile.open(archive, "w:gz", compresslevel=6) as tar:
            # macOS: the .app inside a folder named like the archive, as on Linux.
            top = folder.name if folder.suffix != ".app" else f"{name}/{folder.name}"
            tar.add(folder, arcname=top)
    digest = hashlib.sha256()
    with archive.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    archive.with_name(archive.name + ".sha256").write_text(
        f"{digest.hexdigest()}  {archive.name}\n", encoding="utf-8")
    return archive


# ---------------------------------------------------------------------------- main


def megabytes(size: int) -> str:
    return f"{size / 1e6:,.1f} MB"


def build(cuda: bool = False, smoke: bool = True, dist: Path = DIST, work: Path = WORK) -> dict:
    """Build, check, smoke-test and archive; return the build record (also written as JSON)."""
    started = time.perf_counter()
    check_model()
    if sys.platform.startswith("linux"):
        ensure_x11_libraries()
    inputs = fingerprint(cuda)
    icons = render_icons(work / "icons")
    folder = run_pyinstaller(icons, dist, work, cuda)
    pyinstaller_s = time.perf_counter() - started
    contents = folder / layout.CONTENTS_DIR
    executable = folder / (layout.APP + (".exe" if sys.platform == "win32" else ""))
    if sys.platform == "darwin":
        contents = folder / "Contents" / "Frameworks"
        executable = folder / "Contents" / "MacOS" / layout.APP
    if sys.platform.startswith("linux"):
        add_desktop_integration(folder, icons)

    forbidden = forbidden_parts(contents, executable)
    if forbidden:
        raise BuildError("the bundle holds packages it must not ship: " + ", ".join(forbidden)
                         + "; add them to FORBIDDEN in packaging/bundle_layout.py")
    if not (contents / "models" / layout.DEFAULT_MODEL / "manifest.json").is_file():
        raise BuildError(f"the default model is not at {contents / 'models'}")
    largest = largest_parts(folder)
    print(f"\nLargest parts of {folder.name}:")
    for rel, size in largest:
        print(f"  {megabytes(size):>10}  {rel}")

    floor, missing = None, []
    if sys.platform.startswith("linux"):
        floor, missing = glibc_floor(folder), unresolved_libraries(contents)
        print(f"\nNeeds glibc {floor} or newer.")
        outside = x11_libraries_outside(contents)
        if outside:
            raise BuildError("the bundled X11 plugin would take these from the system: "
                             f"{', '.join(outside)}; rebuild with an empty {work} "
                             "(PyInstaller's cache predates them) or add them to "
                             "BASE_SYSTEM_LIBS in packaging/bundle_layout.py with a reason")
        if missing:
            print("Warning: the window needs system libraries that are not on this machine and "
                  f"so not bundled: {', '.join(missing)} (install them here and rebuild)")

    times = smoke_test(executable, contents) if smoke else {}
    archive = write_archive(folder, layout.bundle_name(cuda))
    record = {
        "name": layout.bundle_name(cuda),
        "version": layout.version(),
        "platform": layout.platform_tag(),
        "folder": folder.name,
        "archive": archive.name,
        "cuda": cuda,
        "fingerprint": inputs,
        "pyinstaller_s": round(pyinstaller_s, 1),
        "build_s": round(time.perf_counter() - started, 1),
        "unpacked_bytes": tree_size(folder),
        "archive_bytes": archive.stat().st_size,
        "largest_parts": largest,
        "components": component_sizes(folder),
        "glibc_floor": floor,
        "unresolved_libraries": missing,
        "smoke_s": times,
    }
    record_path(dist, cuda).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cuda", action="store_true",
                        help="also ship onnxruntime's CUDA and TensorRT providers (+285 MB; "
                             "they need a system CUDA 13 and cuDNN 9 install to be used)")
    parser.add_argument("--no-smoke", dest="smoke", action="store_false",
                        help="skip running the frozen app (the bundle test runs it instead)")
    parser.add_argument("--dist", type=Path, default=DIST, help="output folder (default: dist)")
    args = parser.parse_args(argv)
    try:
        record = build(cuda=args.cuda, smoke=args.smoke, dist=args.dist)
    except BuildError as exc:
        print(f"build.py: error: {exc}", file=sys.stderr)
        return 1
    print(f"\nBuilt {args.dist / record['folder']} in {record['build_s']:.0f} s "
          f"(PyInstaller {record['pyinstaller_s']:.0f} s)")
    print(f"  unpacked {megabytes(record['unpacked_bytes'])}, "
          f"archive {megabytes(record['archive_bytes'])}: {args.dist / record['archive']}")
    if record["smoke_s"]:
        figures = ", ".join(f"{k} {v:.2f} s" for k, v in record["smoke_s"].items())
        print(f"  smoke test in a clean environment passed: {figures}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
