"""The app icon in every form a platform asks for, rendered from the one hand-drawn SVG.

PNG sizes for the Linux icon theme (``hicolor/<n>x<n>/apps``), a multi-size ``.ico`` for the
Windows executable and an ``.icns`` for the macOS app. Rendering goes through Qt's
QSvgRenderer (already a dependency); the ICO and ICNS containers are written here because
both simply wrap PNG data and Qt's writers store only one size per file.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from bundle_layout import ICON_SIZES, PACKAGING

# One icon for the window (a package resource) and the desktop integration built from it.
SVG = PACKAGING.parent / "desktop" / "ui" / "resources" / "onnxchat.svg"
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)  # 256 is the largest an ICO entry can describe
ICNS_TYPES = {16: b"icp4", 32: b"icp5", 64: b"icp6", 128: b"ic07", 256: b"ic08", 512: b"ic09"}


def render_png(svg: Path, size: int) -> bytes:
    """One square PNG of ``svg`` at ``size`` pixels, antialiased, transparent outside."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer
    from PySide6.QtWidgets import QApplication

    # A QApplication, not a bare QGuiApplication: whoever shares the process (the test suite)
    # may create widgets afterwards, and Qt allows one application object per process.
    _app = QApplication.instance() or QApplication([])
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"{svg} is not a valid SVG file; fix the icon source")
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    renderer.render(painter)
    painter.end()
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    buffer.close()
    return bytes(data.data())


def ico_bytes(pngs: dict[int, bytes]) -> bytes:
    """An ICO file holding PNG-compressed entries (supported since Windows Vista)."""
    sizes = [s for s in ICO_SIZES if s in pngs]
    header = struct.pack("<HHH", 0, 1, len(sizes))
    offset = len(header) + 16 * len(sizes)
    entries, blobs = b"", b""
    for size in sizes:
        data = pngs[size]
        # Width and height 0 mean 256; 1 plane, 32 bits per pixel.
        entries += struct.pack("<BBBBHHII", size % 256, size % 256, 0, 0, 1, 32, len(data),
                               offset + len(blobs))
        blobs += data
    return header + entries + blobs


def icns_bytes(pngs: dict[int, bytes]) -> bytes:
    """An ICNS file: PNG entries under the type codes macOS reads for each size."""
    body = b"".join(kind + struct.pack(">I", 8 + len(pngs[size])) + pngs[size]
                    for size, kind in ICNS_TYPES.items() if size in pngs)
    return b"icns" + struct.pack(">I", 8 + len(body)) + body


def render_icons(out: Path, svg: Path = SVG) -> Path:
    """Write ``onnxchat-<n>.png`` for every theme size, ``onnxchat.ico``, ``onnxchat.icns``
    and a copy of the SVG into ``out``; return ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    pngs = {size: render_png(svg, size) for size in ICON_SIZES}
    for size, data in pngs.items():
        (out / f"onnxchat-{size}.png").write_bytes(data)
    (out / "onnxchat.ico").write_bytes(ico_bytes(pngs))
    (out / "onnxchat.icns").write_bytes(icns_bytes(pngs))
    (out / "onnxchat.svg").write_bytes(svg.read_bytes())
    return out
