"""The packaging rules without building: what is trimmed, the icon files, the shell scripts.

The bundle itself is checked by ``test_bundle.py`` (marked ``package``)."""

from __future__ import annotations

import configparser
import importlib
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGING = Path(__file__).resolve().parents[2] / "packaging"
SITE = Path(importlib.import_module("PySide6").__file__).resolve().parent


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_qt_plugins_and_translations_are_trimmed(layout):
    keep = layout.keep_qt_file
    langs = ["zh_CN"]
    assert keep("PySide6/Qt/plugins/platforms/libqxcb.so", langs)
    assert keep("PySide6/Qt/plugins/platforms/libqoffscreen.so", langs)
    assert keep("PySide6/Qt/plugins/platforms/libqwayland.so", langs)
    assert keep("PySide6/plugins/platforms/qwindows.dll", langs)
    assert keep("PySide6/Qt/plugins/imageformats/libqsvg.so", langs)
    assert not keep("PySide6/Qt/plugins/imageformats/libqjpeg.so", langs)
    assert not keep("PySide6/Qt/plugins/platforms/libqeglfs.so", langs)
    assert not keep("PySide6/Qt/plugins/platformthemes/libqgtk3.so", langs)
    assert not keep("PySide6/Qt/plugins/platforminputcontexts/libqtvirtualkeyboardplugin.so",
                    langs)
    assert not keep("PySide6/Qt/plugins/sqldrivers/libqsqlite.so", langs)
    assert keep("PySide6/Qt/translations/qtbase_zh_CN.qm", langs)
    assert keep("PySide6/Qt/translations/qt_zh_CN.qm", langs)
    assert not keep("PySide6/Qt/translations/qtbase_de.qm", langs)
    assert not keep("PySide6/Qt/translations/qt_help_zh_CN.qm", langs)
    assert keep("PySide6/Qt/lib/libQt6Core.so.6", langs)  # judged by the link walk instead
    assert keep("numpy/__init__.pyc", langs)


def test_forbidden_names_cover_modules_files_and_metadata(layout):
    assert layout.is_forbidden("torch/lib/libtorch_cpu.so")
    assert layout.is_forbidden("onnx/onnx_cpp2py_export.cpython-311-x86_64-linux-gnu.so")
    assert layout.is_forbidden("transformers-4.57.6.dist-info/METADATA")
    assert layout.is_forbidden("export/cli.pyc")
    assert not layout.is_forbidden("onnxruntime/capi/libonnxruntime_providers_shared.so")
    assert not layout.is_forbidden("desktop/ui/i18n/onnxchat_zh_CN.qm")


def test_gpu_and_system_libraries_are_matched(layout):
    assert layout.GPU_PROVIDER_LIBS.search("onnxruntime/capi/libonnxruntime_providers_cuda.so")
    assert layout.GPU_PROVIDER_LIBS.search("onnxruntime/capi/onnxruntime_providers_tensorrt.dll")
    assert not layout.GPU_PROVIDER_LIBS.search("onnxruntime/capi/"
                                               "libonnxruntime_providers_shared.so")
    for name in ("libcudart.so.13", "libcublasLt.so.13", "cudnn64_9.dll", "libnvinfer.so.10"):
        assert layout.GPU_RUNTIME_LIBS.search(name), name
    assert not layout.GPU_RUNTIME_LIBS.search("libQt6Core.so.6")
    assert layout.SYSTEM_LIBS.search("libstdc++.so.6")
    assert not layout.SYSTEM_LIBS.search("libstdc++fs.a")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ELF link walk")
def test_unlinked_qt_libraries_are_pruned_with_their_links(layout):
    """Real PySide6 binaries: QtCore's module keeps libQt6Core and ICU; Qml, which nothing
    kept links to, goes, and so does the top-level link to it."""
    qt_lib = SITE / "Qt" / "lib"
    core_module = next(SITE.glob("QtCore.*.so"))
    libs = [p for p in qt_lib.iterdir() if p.name.startswith(("libQt6Core.", "libQt6Qml.",
                                                               "libicu"))]
    assert any(p.name.startswith("libQt6Qml.") for p in libs)
    binaries = [(f"PySide6/{core_module.name}", str(core_module), "EXTENSION")]
    binaries += [(f"PySide6/Qt/lib/{p.name}", str(p), "BINARY") for p in libs]
    kept = {Path(dest).name for dest, _, _ in layout.prune_unreachable_libraries(binaries)}
    assert core_module.name in kept
    assert any(n.startswith("libQt6Core.") for n in kept)
    assert any(n.startswith("libicuuc.") for n in kept)
    assert not any(n.startswith("libQt6Qml.") for n in kept)

    datas = [("libQt6Qml.so.6", "PySide6/Qt/lib/libQt6Qml.so.6", "SYMLINK"),
             ("libQt6Core.so.6", "PySide6/Qt/lib/libQt6Core.so.6", "SYMLINK"),
             ("PySide6/Qt/translations/qt_zh_CN.qm", "/x/qt_zh_CN.qm", "DATA")]
    kept_binaries = [("PySide6/Qt/lib/libQt6Core.so.6", "/x/libQt6Core.so.6", "BINARY")]
    assert [d[0] for d in layout.drop_dangling_links(datas, kept_binaries)] == [
        "libQt6Core.so.6", "PySide6/Qt/translations/qt_zh_CN.qm"]


def test_icons_render_at_every_size_and_wrap_into_ico_and_icns(tmp_path, layout):
    icons = importlib.import_module("bundle_icons")
    out = icons.render_icons(tmp_path)
    for size in layout.ICON_SIZES:
        data = (out / f"onnxchat-{size}.png").read_bytes()
        assert png_size(data) == (size, size)

    ico = (out / "onnxchat.ico").read_bytes()
    reserved, kind, count = struct.unpack("<HHH", ico[:6])
    assert (reserved, kind, count) == (0, 1, len(icons.ICO_SIZES))
    for i, size in enumerate(icons.ICO_SIZES):
        width, _h, _c, _r, _p, bits, length, offset = struct.unpack(
            "<BBBBHHII", ico[6 + 16 * i: 22 + 16 * i])
        assert (width or 256, bits) == (size, 32)
        assert png_size(ico[offset:offset + length]) == (size, size)

    icns = (out / "onnxchat.icns").read_bytes()
    assert icns[:4] == b"icns" and struct.unpack(">I", icns[4:8])[0] == len(icns)
    position, found = 8, {}
    while position < len(icns):
        kind, length = icns[position:position + 4], struct.unpack(
            ">I", icns[position + 4:position + 8])[0]
        found[kind] = png_size(icns[position + 8:position + length])
        position += length
    assert found == {k: (s, s) for s, k in icons.ICNS_TYPES.items()}


def test_desktop_entry_names_the_icon_and_window(layout):
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str
    entry.read(PACKAGING / "linux" / "onnxchat.desktop", encoding="utf-8")
    section = entry["Desktop Entry"]
    assert section["Type"] == "Application"
    assert section["Icon"] == layout.APP
    assert section["Exec"] == section["TryExec"] == layout.APP  # rewritten by install.sh
    assert section["StartupWMClass"] == "OnnxChat"
    validator = shutil.which("desktop-file-validate")
    if validator:
        result = subprocess.run([validator, str(PACKAGING / "linux" / "onnxchat.desktop")],
                                capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("script", ["install.sh", "uninstall.sh"])
def test_shell_scripts_parse_and_are_executable(script):
    path = PACKAGING / "linux" / script
    assert path.stat().st_mode & 0o111
    result = subprocess.run(["sh", "-n", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_bundle_name_carries_version_and_platform(layout):
    system = {"win32": "windows", "darwin": "macos"}.get(sys.platform, "linux")
    name = layout.bundle_name()
    assert name.startswith(f"onnxchat-{layout.version()}-{system}-")
    assert "amd64" not in name and "aarch64" not in name  # one spelling per architecture


def test_missing_cuda_provider_reason_fits_the_packaged_app():
    """What onnxruntime-gpu logs in the bundle, which leaves the CUDA provider out; with the
    provider present (a pip install, a --cuda build) the missing CUDA library is named."""
    from desktop.engine.runtime import cuda_failure_reason

    bundled = ("Failed to load library libonnxruntime_providers_cuda.so with error: "
               "libonnxruntime_providers_cuda.so: cannot open shared object file: "
               "No such file or directory\n")
    reason = cuda_failure_reason(bundled)
    assert reason.startswith("CUDA unavailable: this packaged build leaves out")
    assert "\n" not in reason
    present = ("Failed to load library /venv/onnxruntime/capi/libonnxruntime_providers_cuda.so "
               "with error: libcublasLt.so.13: cannot open shared object file: No such file or "
               "directory\n")
    assert "libcublasLt.so.13 not found" in cuda_failure_reason(present)


def test_the_base_system_list_holds_only_what_every_desktop_has(layout):
    base = layout.BASE_SYSTEM_LIBS
    for name in ("libc.so.6", "libm.so.6", "libstdc++.so.6", "libGL.so.1", "libEGL.so.1",
                 "libGLX.so.0", "libxcb.so.1", "linux-vdso.so.1", "ld-linux-x86-64.so.2"):
        assert base.match(name), name
    for name in ("libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxcb-keysyms.so.1",
                 "libxkbcommon-x11.so.0", "libX11.so.6", "libfontconfig.so.1"):
        assert not base.match(name), name
