"""The first start on an X11 desktop that lacks a library Qt's xcb plugin links to: one line
naming the library and the packages to install, a non-zero exit, and no Qt abort. Wayland and
offscreen starts are not checked."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
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
    ({"DISPLAY": ":0", "XDG_SESSION_TYPE": "wayland"}, False),  # the compositor's default
    ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "wayland;xcb"}, True),  # no Wayland session here
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


def unused_display() -> str:
    number = 97
    while Path(f"/tmp/.X11-unix/X{number}").exists() or Path(f"/tmp/.X{number}-lock").exists():
        number += 1
    return f":{number}"


def test_a_display_no_x_server_answers_on_is_named_without_a_qt_abort(tmp_path):
    plugin = find_plugin({})
    if plugin is None or missing_libraries(plugin):
        pytest.skip("Qt's xcb plugin cannot load here (see the missing-library tests)")
    display = unused_display()
    env = {k: v for k, v in os.environ.items()
           if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY", "XDG_SESSION_TYPE")}
    result = subprocess.run([sys.executable, "-m", "desktop", "--data-dir", str(tmp_path / "d")],
                            env=env | {"DISPLAY": display}, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (
        f"onnxchat: error: the window cannot open on X11: cannot reach the X display "
        f"'{display}' (from DISPLAY); start OnnxChat inside a desktop session, or use "
        "`onnxchat chat` in a terminal")


@dataclass
class XServer:
    display: str
    log: Path  # the server's own messages, for failures


@pytest.fixture
def x_server(tmp_path: Path) -> Iterator[XServer]:
    """A real X server (Xvfb) on a free display."""
    if not (shutil.which("Xvfb") and shutil.which("xwininfo")):
        pytest.skip("needs Xvfb and xwininfo (Debian: xvfb x11-utils; `make test` installs "
                    "them as root)")
    log = tmp_path / "xvfb.log"
    read, write = os.pipe()
    # -noreset: a server with no clients left resets and refuses connections meanwhile.
    with log.open("w") as output:
        server = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-noreset", "-screen", "0",
                                   "1280x800x24", "-nolisten", "tcp"], pass_fds=(write,),
                                  stdout=output, stderr=subprocess.STDOUT)
    os.close(write)
    with os.fdopen(read) as ready:
        number = ready.readline().strip()  # written once the server accepts clients
    assert number, f"Xvfb did not start: {log.read_text()}"
    yield XServer(f":{number}", log)
    server.terminate()
    server.wait(timeout=60)


def test_the_window_opens_on_a_real_x_server_and_ctrl_c_closes_it(x_server, tmp_path):
    plugin = find_plugin({})
    if plugin is None or missing_libraries(plugin):
        pytest.skip("Qt's xcb plugin cannot load here (see the missing-library tests)")
    env = {k: v for k, v in os.environ.items()
           if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY", "XDG_SESSION_TYPE")}
    app = subprocess.Popen([sys.executable, "-m", "desktop", "--data-dir", str(tmp_path / "d")],
                           env=env | {"DISPLAY": x_server.display}, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)

    def failure(what: str) -> str:
        if app.poll() is None:
            app.kill()
        return f"{what}\napp: {app.communicate()[1]}\nXvfb: {x_server.log.read_text()}"

    deadline = time.monotonic() + 120
    tree = ""
    while '"OnnxChat")' not in tree:  # the main window, by its WM_CLASS
        assert app.poll() is None, failure("the app ended")
        assert time.monotonic() < deadline, failure("the window never appeared")
        listing = subprocess.run(["xwininfo", "-root", "-tree", "-display", x_server.display],
                                 capture_output=True, text=True, check=False)
        assert listing.returncode == 0, failure(f"xwininfo: {listing.stderr}")
        tree = listing.stdout
        time.sleep(0.2)
    app.send_signal(signal.SIGINT)  # Ctrl-C in the terminal closes the window
    try:
        _, err = app.communicate(timeout=120)
    finally:
        if app.poll() is None:
            app.kill()
            app.communicate()
    assert app.returncode == 0, err
    assert "Traceback" not in err and "Aborted" not in err
