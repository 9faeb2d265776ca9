"""The packaged app, as a user gets it: build (or reuse a fresh build), unpack the archive,
and run the frozen executable in a clean environment (no virtualenv, no PYTHONPATH, an empty
home, offscreen). Skip locally with ``-m 'not package'``."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from huge_pages import SKIP_REASON, TUNABLE_WORKS_HERE, loaded_chat

pytestmark = [
    pytest.mark.package,
    pytest.mark.timeout(1800),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the Linux bundle"),
]

PACKAGING = Path(__file__).resolve().parents[2] / "packaging"
BUILD_TIMEOUT_S = 1500


def x11_libraries_unavailable() -> str | None:
    """Why this machine cannot make a bundle that carries Qt's X11 libraries, or None: they
    are missing and cannot be installed here (not root, or no apt-get)."""
    from desktop.ui.platform_check import install_advice, missing_libraries, pyside_plugin_dir

    folder = pyside_plugin_dir()
    missing = missing_libraries(folder / "platforms" / "libqxcb.so") if folder else []
    if not missing or (os.geteuid() == 0 and shutil.which("apt-get")):
        return None
    return (f"the bundle carries Qt's X11 libraries and this machine lacks "
            f"{', '.join(missing)}: {install_advice(missing)} (`make system-libs` does as root)")


@pytest.fixture(scope="module")
def record(build_script, default_model) -> dict:
    """The build record of a bundle made from the current sources and model."""
    info = build_script.fresh_build()
    if info is None and (reason := x11_libraries_unavailable()):
        pytest.skip(reason)
    if info is None:
        result = subprocess.run([sys.executable, str(PACKAGING / "build.py"), "--no-smoke"],
                                cwd=PACKAGING.parent, capture_output=True, text=True,
                                timeout=BUILD_TIMEOUT_S, check=False)
        assert result.returncode == 0, (result.stdout[-3000:] + result.stderr[-3000:])
        info = build_script.fresh_build()
        assert info is not None, "build.py finished but left no fresh build record"
    return info


@pytest.fixture(scope="module")
def archive(record, layout) -> Path:
    return layout.DIST / record["archive"]


@pytest.fixture(scope="module")
def folder(archive, tmp_path_factory) -> Path:
    """The archive unpacked the way a user does it."""
    target = tmp_path_factory.mktemp("unpacked")
    subprocess.run(["tar", "-xzf", str(archive), "-C", str(target)], check=True, timeout=300)
    (unpacked,) = target.iterdir()
    return unpacked


def run_frozen(folder: Path, home: Path, *args: str, timeout: float = 300
               ) -> subprocess.CompletedProcess[str]:
    from bundle_layout import clean_env

    home.mkdir(parents=True, exist_ok=True)
    return subprocess.run([str(folder / "onnxchat"), *args], env=clean_env(home), cwd=home,
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_archive_has_its_checksum_and_one_top_folder(archive, record):
    line = archive.with_name(archive.name + ".sha256").read_text(encoding="utf-8")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert line == f"{digest}  {archive.name}\n"
    with tarfile.open(archive) as tar:
        tops = {m.name.split("/", 1)[0] for m in tar.getmembers()}
    assert tops == {record["name"]}


def test_bundle_holds_the_app_model_and_desktop_integration(folder, layout):
    contents = folder / layout.CONTENTS_DIR
    assert os.access(folder / "onnxchat", os.X_OK)
    assert (contents / "models" / layout.DEFAULT_MODEL / "manifest.json").is_file()
    for script in ("install.sh", "uninstall.sh"):
        assert os.access(folder / script, os.X_OK), script
    assert (folder / "share" / "applications" / "onnxchat.desktop").is_file()
    icons = folder / "share" / "icons" / "hicolor"
    for size in layout.ICON_SIZES:
        png = (icons / f"{size}x{size}" / "apps" / "onnxchat.png").read_bytes()
        assert png[:4] == b"\x89PNG"
    assert (icons / "scalable" / "apps" / "onnxchat.svg").is_file()


def test_bundle_ships_the_runtime_only(folder, record, layout, build_script):
    contents = folder / layout.CONTENTS_DIR
    assert build_script.forbidden_parts(contents, folder / "onnxchat") == []
    names = [p.name for p in contents.rglob("*")]
    for unwanted in ("libQt6Qml", "libQt6Quick", "libQt6Network", "libQt6Pdf",
                     "libQt6VirtualKeyboard", "libgtk-3", "libcudart", "libstdc++"):
        assert not [n for n in names if n.startswith(unwanted)], unwanted
    if not record["cuda"]:
        assert not [n for n in names if "providers_cuda" in n or "providers_tensorrt" in n]
    plugins = contents / "PySide6" / "Qt" / "plugins"
    assert {p.name for p in plugins.iterdir()} <= set(layout.QT_PLUGINS)
    assert (plugins / "platforms" / "libqxcb.so").is_file()
    assert (plugins / "platforms" / "libqoffscreen.so").is_file()
    dangling = [p for p in contents.rglob("*") if p.is_symlink() and not p.exists()]
    assert dangling == []


def test_the_x11_plugin_finds_its_libraries_in_the_bundle_or_the_base_system(folder, layout):
    """Unpack and run on a stock Ubuntu desktop: everything Qt's xcb plugin loads, directly or
    further down, is inside the bundle or on the documented base-system list."""
    contents = (folder / layout.CONTENTS_DIR).resolve()
    plugin = contents / "PySide6" / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    env = dict(os.environ, LD_LIBRARY_PATH=str(contents))  # what the bootloader sets
    loaded = layout.ldd(plugin, env)
    outside = [f"{name} ({path or 'not found'})" for name, path in loaded
               if not layout.BASE_SYSTEM_LIBS.match(name)
               and (path is None or contents not in Path(path).resolve().parents)]
    assert outside == []
    inside = {name for name, path in loaded if path and contents in Path(path).resolve().parents}
    assert {"libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxcb-keysyms.so.1",
            "libxkbcommon-x11.so.0"} <= inside


def test_frozen_app_answers_and_finds_its_bundled_model(folder, tmp_path, layout):
    version = run_frozen(folder, tmp_path, "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"onnxchat {layout.version()}"

    models = run_frozen(folder, tmp_path, "models", "--verify", "--json")
    assert models.returncode == 0, models.stderr
    (row,) = json.loads(models.stdout)
    assert row["name"] == layout.DEFAULT_MODEL
    assert Path(row["path"]) == folder / layout.CONTENTS_DIR / "models" / layout.DEFAULT_MODEL
    assert row["verified"] and row["problem"] is None


def test_frozen_self_test_passes_in_a_clean_environment(folder, tmp_path, record):
    result = run_frozen(folder, tmp_path / "home", "--self-test")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Traceback" not in output
    if not record["cuda"] and "CUDA unavailable" in output:
        # The CPU fallback explains itself, without advice that fits only a pip install.
        assert "packaged build leaves out onnxruntime's CUDA provider" in output
        assert "pip install 'onnxruntime-gpu" not in output


def test_frozen_app_serves_the_openai_api(folder, tmp_path, build_script):
    home = tmp_path / "home"
    home.mkdir()
    build_script.serve_check(folder / "onnxchat", home)


@pytest.mark.skipif(not TUNABLE_WORKS_HERE, reason=SKIP_REASON)
def test_frozen_app_holds_its_weights_in_huge_pages(folder, tmp_path):
    """The packaged app restarts itself with glibc's tunable like the pip install does (the
    bundled graph as it is: a folded copy maps its packed weights from the cache file)."""
    from bundle_layout import clean_env

    home = tmp_path / "home"
    home.mkdir()
    huge_mb, tunables = loaded_chat(
        [str(folder / "onnxchat"), "chat", "--device", "cpu", "--no-history",
         "--max-new-tokens", "1", "--temperature", "0"],
        {**clean_env(home), "ONNXCHAT_FOLD_OFFSETS": "0"}, cwd=home)
    assert tunables == "glibc.malloc.hugetlb=1"
    assert huge_mb >= 64


def test_install_and_uninstall_touch_exactly_their_files(folder, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin"}

    def files() -> set[str]:
        return {str(p.relative_to(home)) for p in home.rglob("*") if not p.is_dir()}

    before = files()
    installed = subprocess.run([str(folder / "install.sh")], env=env, capture_output=True,
                               text=True, check=False)
    assert installed.returncode == 0, installed.stderr
    added = files() - before
    expected = {".local/bin/onnxchat", ".local/share/applications/onnxchat.desktop",
                ".local/share/icons/hicolor/scalable/apps/onnxchat.svg"}
    expected |= {f".local/share/icons/hicolor/{n}x{n}/apps/onnxchat.png"
                 for n in (16, 24, 32, 48, 64, 128, 256, 512)}
    assert added == expected
    link = home / ".local" / "bin" / "onnxchat"
    assert link.resolve() == (folder / "onnxchat").resolve()
    entry = (home / ".local/share/applications/onnxchat.desktop").read_text(encoding="utf-8")
    assert f'Exec="{folder.resolve() / "onnxchat"}"' in entry.splitlines()
    other_home = tmp_path / "other"  # the app's own first-run files are not the point here
    other_home.mkdir()
    version = subprocess.run([str(link), "--version"], env={"HOME": str(other_home)},
                             capture_output=True, text=True, check=False, timeout=120)
    assert version.returncode == 0, version.stderr

    removed = subprocess.run([str(folder / "uninstall.sh")], env=env, capture_output=True,
                             text=True, check=False)
    assert removed.returncode == 0, removed.stderr
    assert files() == before

    link.parent.mkdir(parents=True, exist_ok=True)
    link.write_text("#!/bin/sh\n")  # someone else's onnxchat command: left alone
    refused = subprocess.run([str(folder / "install.sh")], env=env, capture_output=True,
                             text=True, check=False)
    assert refused.returncode == 1
    assert "is not a link" in refused.stderr and "\n" not in refused.stderr.strip()
    assert link.read_text() == "#!/bin/sh\n"
