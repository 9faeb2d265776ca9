"""Can Qt open a window here? Answered before the ``QApplication`` exists.

When Qt's X11 (xcb) platform plugin cannot be loaded because a system library it links to is
missing (stock Ubuntu desktops lack ``libxcb-cursor0``; minimal installs lack more), Qt prints
a paragraph about platform plugins and aborts the process. This module finds that case first
and names the missing libraries with the packages that provide them, in one line.

The same goes for a ``DISPLAY`` no X server answers on (an ssh session without X
forwarding, say), which is checked next.

Only the X11 path is checked: Qt tries the Wayland plugin first in a Wayland session, and an
explicit ``QT_QPA_PLATFORM`` such as ``offscreen`` needs no X11 libraries. The check loads the
plugin with the dynamic loader exactly as Qt would (same search path, so the packaged app's
bundled libraries count), and only when that fails asks ``ldd`` for the full list.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from desktop.errors import UserError

XCB_PLUGIN = "libqxcb.so"

# Library (its name without ``.so`` and version) → (Debian/Ubuntu package, Fedora package).
PACKAGES: dict[str, tuple[str, str]] = {
    "libxcb-cursor": ("libxcb-cursor0", "xcb-util-cursor"),
    "libxcb-icccm": ("libxcb-icccm4", "xcb-util-wm"),
    "libxcb-keysyms": ("libxcb-keysyms1", "xcb-util-keysyms"),
    "libxcb-image": ("libxcb-image0", "xcb-util-image"),
    "libxcb-render-util": ("libxcb-render-util0", "xcb-util-renderutil"),
    "libxcb-util": ("libxcb-util1", "xcb-util"),
    "libxkbcommon-x11": ("libxkbcommon-x11-0", "libxkbcommon-x11"),
    "libxkbcommon": ("libxkbcommon0", "libxkbcommon"),
    "libxcb-randr": ("libxcb-randr0", "libxcb"),
    "libxcb-shape": ("libxcb-shape0", "libxcb"),
    "libxcb-shm": ("libxcb-shm0", "libxcb"),
    "libxcb-sync": ("libxcb-sync1", "libxcb"),
    "libxcb-xfixes": ("libxcb-xfixes0", "libxcb"),
    "libxcb-render": ("libxcb-render0", "libxcb"),
    "libxcb-xkb": ("libxcb-xkb1", "libxcb"),
    "libxcb-xinerama": ("libxcb-xinerama0", "libxcb"),
    "libxcb": ("libxcb1", "libxcb"),
    "libX11-xcb": ("libx11-xcb1", "libX11-xcb"),
    "libX11": ("libx11-6", "libX11"),
    "libGL": ("libgl1", "libglvnd-glx"),
    "libEGL": ("libegl1", "libglvnd-egl"),
    "libfontconfig": ("libfontconfig1", "fontconfig"),
    "libfreetype": ("libfreetype6", "freetype"),
    "libglib-2.0": ("libglib2.0-0", "glib2"),
    "libgthread-2.0": ("libglib2.0-0", "glib2"),
    "libdbus-1": ("libdbus-1-3", "dbus-libs"),
}


def qt_platforms(env: Mapping[str, str]) -> list[str]:
    """The platform plugins Qt 6 tries, in order, in this environment (first that works wins):
    ``QT_QPA_PLATFORM`` if set, else Wayland in a Wayland session, then X11 if ``DISPLAY``."""
    explicit = env.get("QT_QPA_PLATFORM", "")
    if explicit:
        return [entry.split(":", 1)[0] for entry in explicit.split(";") if entry]
    order = []
    if env.get("WAYLAND_DISPLAY") or env.get("XDG_SESSION_TYPE") == "wayland":
        order.append("wayland")
    if env.get("DISPLAY"):
        order.append("xcb")
    return order


def xcb_will_be_used(env: Mapping[str, str]) -> bool:
    """Whether Qt reaches the X11 plugin: it comes before any plugin expected to work (Wayland
    in a Wayland session, whose compositor answers even without ``WAYLAND_DISPLAY``, or a
    non-window platform such as ``offscreen``). In doubt, Qt is left to decide."""
    wayland_session = bool(env.get("WAYLAND_DISPLAY")) or env.get("XDG_SESSION_TYPE") == "wayland"
    for name in qt_platforms(env):
        if name == "xcb":
            return True
        if name != "wayland" or wayland_session:
            return False
    return False


def pyside_plugin_dir() -> Path | None:
    """PySide6's own plugin folder, found without loading Qt (whose libraries may be the very
    thing that is missing)."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "Qt" / "plugins"


def plugin_dirs(env: Mapping[str, str]) -> list[Path]:
    """Where Qt looks for plugins, in its order: ``QT_PLUGIN_PATH``, then Qt's own folder."""
    from PySide6.QtCore import QLibraryInfo

    dirs = [Path(p) for p in env.get("QT_PLUGIN_PATH", "").split(os.pathsep) if p]
    dirs.append(Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath)))
    return dirs


def find_plugin(env: Mapping[str, str], name: str = XCB_PLUGIN) -> Path | None:
    return next((d / "platforms" / name for d in plugin_dirs(env)
                 if (d / "platforms" / name).is_file()), None)


def load_error(library: Path) -> str | None:
    """Why the dynamic loader cannot load ``library`` (None if it can)."""
    try:
        ctypes.CDLL(str(library))
    except OSError as exc:
        return str(exc)
    return None


def missing_libraries(library: Path) -> list[str]:
    """Sonames ``library`` needs that the dynamic loader cannot find, directly or further
    down; empty if it loads. Falls back to the loader's own message without ``ldd``."""
    error = load_error(library)
    if error is None:
        return []
    missing: list[str] = []
    ldd = shutil.which("ldd")
    if ldd is not None:
        result = subprocess.run([ldd, str(library)], capture_output=True, text=True,
                                check=False)
        for line in result.stdout.splitlines():
            if "=> not found" in line and (name := line.split()[0]) not in missing:
                missing.append(name)
    if not missing:
        match = re.search(r"([^\s/:]+\.so[.\d]*): cannot open shared object file", error)
        missing.append(match.group(1) if match else error.strip().splitlines()[0])
    return missing


def display_error(display: str) -> str | None:
    """Why the X server named ``display`` cannot be reached, or None if it answers (asked with
    libxcb, as Qt's plugin would; None too when libxcb itself is missing, which the library
    check reports)."""
    try:
        xcb = ctypes.CDLL("libxcb.so.1")
    except OSError:
        return None
    xcb.xcb_connect.restype = ctypes.c_void_p
    xcb.xcb_connect.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    xcb.xcb_connection_has_error.argtypes = [ctypes.c_void_p]
    xcb.xcb_disconnect.argtypes = [ctypes.c_void_p]
    connection = xcb.xcb_connect(display.encode(), None)  # never NULL: errors are a state
    try:
        failed = xcb.xcb_connection_has_error(connection)
    finally:
        xcb.xcb_disconnect(connection)
    if not failed:
        return None
    return (f"cannot reach the X display {display!r} (from DISPLAY); start OnnxChat inside a "
            "desktop session, or use `onnxchat chat` in a terminal")


def _stem(soname: str) -> str:
    return re.sub(r"\.so(\.\d+)*$", "", soname)


def install_advice(missing: list[str]) -> str:
    """The commands that install ``missing`` on Debian/Ubuntu and on Fedora."""
    known = [PACKAGES[_stem(name)] for name in missing if _stem(name) in PACKAGES]
    if not known:
        return "install the packages that provide them"
    debian = " ".join(dict.fromkeys(deb for deb, _ in known))
    fedora = " ".join(dict.fromkeys(rpm for _, rpm in known))
    return (f"install them with `sudo apt-get install {debian}` (Debian, Ubuntu) or "
            f"`sudo dnf install {fedora}` (Fedora)")


def check_x11(env: Mapping[str, str] | None = None) -> None:
    """Raise a one-line :class:`UserError` when the window would need Qt's X11 plugin and the
    system lacks libraries it links to, or the X server in ``DISPLAY`` does not answer (Qt
    aborts on both); otherwise return (also when there is no plugin to check, which leaves
    the answer to Qt)."""
    env = os.environ if env is None else env
    if not xcb_will_be_used(env):
        return
    plugin = find_plugin(env)
    if plugin is None:
        return
    missing = missing_libraries(plugin)
    if missing:
        raise UserError(
            f"the window cannot open on X11: Qt's xcb platform plugin needs "
            f"{', '.join(missing)}, missing on this system; {install_advice(missing)}, or use "
            "`onnxchat chat` in a terminal")
    unreachable = display_error(env.get("DISPLAY", ""))
    if unreachable:
        raise UserError(f"the window cannot open on X11: {unreachable}")


def debian_packages(missing: list[str]) -> list[str]:
    """The Debian/Ubuntu packages that provide ``missing`` (unknown libraries left out)."""
    return list(dict.fromkeys(PACKAGES[_stem(n)][0] for n in missing if _stem(n) in PACKAGES))


def main(argv: list[str] | None = None) -> int:
    """``python -m desktop.ui.platform_check offscreen xcb``: the libraries those platform
    plugins of PySide6 need and this system lacks (exit 1 if any); for ``make`` and the
    packaging build, which install them. ``--debian`` prints the package names instead."""
    parser = argparse.ArgumentParser(prog="python -m desktop.ui.platform_check")
    parser.add_argument("plugins", nargs="+", help="platform plugin names: offscreen, xcb, ...")
    parser.add_argument("--debian", action="store_true",
                        help="print the Debian/Ubuntu packages that provide what is missing")
    args = parser.parse_args(argv)
    folder = pyside_plugin_dir()
    if folder is None:
        print("PySide6 is not installed", file=sys.stderr)
        return 2
    missing: list[str] = []
    for name in args.plugins:
        for soname in missing_libraries(folder / "platforms" / f"libq{name}.so"):
            if soname not in missing:
                missing.append(soname)
    if missing:
        print(" ".join(debian_packages(missing) if args.debian else missing))
    return 1 if missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
