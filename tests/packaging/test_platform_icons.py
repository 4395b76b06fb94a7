"""The icon set: PNGs in every hicolor size, the SVG, and the .ico/.icns made from the PNGs."""

from __future__ import annotations

import struct
import subprocess
import sys

import pytest
from packaging_helpers import PACKAGING, ROOT

ICONS = ROOT / "src" / "trainer_gui" / "resources" / "icons"
HICOLOR_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.mark.parametrize("size", HICOLOR_SIZES)
def test_png_for_each_hicolor_size(size: int) -> None:
    png = ICONS / f"trainer-gui-{size}.png"
    assert _png_size(png.read_bytes()) == (size, size)


def test_ico_holds_the_windows_sizes() -> None:
    data = (PACKAGING / "icons" / "trainer-gui.ico").read_bytes()
    reserved, kind, count = struct.unpack("<HHH", data[:6])
    assert (reserved, kind) == (0, 1)
    sizes = {data[6 + 16 * i] or 256 for i in range(count)}
    assert {16, 32, 48, 256} <= sizes


def test_icns_has_the_retina_sizes() -> None:
    data = (PACKAGING / "icons" / "trainer-gui.icns").read_bytes()
    assert data[:4] == b"icns" and struct.unpack(">I", data[4:8])[0] == len(data)
    types, offset = set(), 8
    while offset < len(data):
        kind, length = struct.unpack(">4sI", data[offset : offset + 8])
        types.add(kind)
        offset += length
    assert {b"ic07", b"ic08", b"ic09", b"ic10"} <= types  # 128, 256, 512, 512@2x


def test_ico_and_icns_are_up_to_date_with_the_pngs() -> None:
    pytest.importorskip("PIL", reason="Pillow comes with the `package` extra")
    done = subprocess.run(
        [sys.executable, str(PACKAGING / "make_icons.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
