"""The first start on an X11 desktop that lacks a library Qt's xcb plugin links to: one line
naming the library and the packages to install, a non-zero exit, and no Qt abort. Wayland and
offscreen starts are not checked."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from desktop.errors import UserError
from desktop.ui.platform_check import (
    check_x11,
    find_plugin,
    install_advice,
    missing_libraries,
    xcb_will_be_used,
)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X11 on Linux")

NEEDED = b"libxcb-cursor.so.0\0"
ABSENT = b"libxcb-cursor.so.9\0"  # the same library at a version no system has


@pytest.fixture
def broken_plugins(tmp_path: Path) -> Path:
    """A plugin folder whose xcb plugin links to a library the system cannot provide: a copy
    of PySide6's plugin with one needed library's name changed, beside a link to Qt's own
    libraries (where the plugin's ``$ORIGIN/../../lib`` run path points)."""
    real = find_plugin({})
    assert real is not None, "PySide6 ships the xcb plugin"
    qt = real.parents[2]
    root = tmp_path / "qt"
    (root / "plugins" / "platforms").mkdir(parents=True)
    (root / "lib").symlink_to(qt / "lib")
    data = real.read_bytes()
    assert data.count(NEEDED) == 1
    (root / "plugins" / "platforms" / real.name).write_bytes(data.replace(NEEDED, ABSENT))
    return root / "plugins"


def x11_env(plugins: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY", "XDG_SESSION_TYPE")}
    return env | {"DISPLAY": ":97", "QT_PLUGIN_PATH": str(plugins)}


def test_a_missing_library_is_named_in_one_line_without_a_qt_abort(broken_plugins, tmp_path):
    result = subprocess.run([sys.executable, "-m", "desktop", "--data-dir", str(tmp_path / "d")],
                            env=x11_env(broken_plugins), capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 2, result.stderr  # an exit status, not a signal (abort)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("onnxchat: error: the window cannot open on X11")
    assert "libxcb-cursor.so.9" in line
    assert "`sudo apt-get install libxcb-cursor0" in line
    assert "`sudo dnf install xcb-util-cursor" in line
    assert "Aborted" not in result.stderr and "Could not load the Qt platform" not in result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "d").exists()  # refused before anything was created


def test_the_check_names_every_missing_library(broken_plugins):
    missing = missing_libraries(broken_plugins / "platforms" / "libqxcb.so")
    assert "libxcb-cursor.so.9" in missing
    with pytest.raises(UserError, match=r"libxcb-cursor\.so\.9"):
        check_x11(x11_env(broken_plugins))


def test_a_plugin_that_loads_has_nothing_missing():
    offscreen = find_plugin({}, "libqoffscreen.so")
    assert offscreen is not None
    assert missing_libraries(offscreen) == []


def test_wayland_and_offscreen_starts_do_not_need_the_x11_plugin(broken_plugins):
    env = x11_env(broken_plugins)
    wayland = env | {"WAYLAND_DISPLAY": "wayland-0", "XDG_SESSION_TYPE": "wayland"}
    check_x11(wayland)  # Qt takes the Wayland plugin first; X11 is not reached
    check_x11(env | {"QT_QPA_PLATFORM": "offscreen"})
    check_x11(env | {"QT_QPA_PLATFORM": "wayland;xcb", "WAYLAND_DISPLAY": "wayland-0"})
    with pytest.raises(UserError):
        check_x11(env | {"QT_QPA_PLATFORM": "xcb"})


@pytest.mark.parametrize(("env", "expected"), [
    ({"DISPLAY": ":0"}, True),
    ({"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0"}, False),
    ({"DISPLAY": ":0", "XDG_SESSION_TYPE": "wayland"}, True),  # no compositor: X11 fallback
    ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "offscreen"}, False),
    ({"QT_QPA_PLATFORM": "xcb:nograb"}, True),
    ({"QT_QPA_PLATFORM": "wayland;xcb", "DISPLAY": ":0"}, True),
    ({}, False),
])
def test_when_qt_would_use_x11(env, expected):
    assert xcb_will_be_used(env) is expected


def test_install_advice_names_both_distribution_families():
    advice = install_advice(["libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libxcb-shape.so.0",
                             "libxcb-randr.so.0"])
    assert "apt-get install libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-randr0`" in advice
    assert "dnf install xcb-util-wm xcb-util-keysyms libxcb`" in advice
    assert install_advice(["libunknown.so.3"]) == "install the packages that provide them"


def test_the_setup_check_lists_nothing_for_the_plugin_the_tests_use(capsys):
    from desktop.ui.platform_check import debian_packages, main

    assert main(["offscreen"]) == 0 and capsys.readouterr().out == ""
    assert debian_packages(["libxcb-cursor.so.0", "libEGL.so.1", "libweird.so.1"]) == [
        "libxcb-cursor0", "libegl1"]
