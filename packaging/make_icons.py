"""Build the Windows .ico and macOS .icns from the PNGs in src/trainer_gui/resources/icons.

    python packaging/make_icons.py            # writes packaging/icons/trainer-gui.{ico,icns}
    python packaging/make_icons.py --check    # exit 1 if the committed files are out of date

The PNGs themselves come from the SVG (scripts/make_icons.py). Pillow writes both formats on any
OS (no iconutil or ImageMagick needed); it is in the `package` extra. Each size is taken from
its own PNG, not downscaled from the largest, so the small sizes keep their hinting.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PNG_DIR = ROOT / "src" / "trainer_gui" / "resources" / "icons"
OUT_DIR = ROOT / "packaging" / "icons"
NAME = "trainer-gui"
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)  # 256 is the largest an .ico holds
ICNS_SIZES = (16, 32, 64, 128, 256, 512)  # plus @2x variants, which Pillow derives from these


def _png(size: int):  # -> PIL.Image.Image
    from PIL import Image

    image = Image.open(PNG_DIR / f"{NAME}-{size}.png")
    image.load()
    if image.size != (size, size):
        raise SystemExit(f"{NAME}-{size}.png is {image.size}, expected {size}x{size}")
    return image.convert("RGBA")


def ico_bytes() -> bytes:
    images = [_png(size) for size in ICO_SIZES]
    buf = io.BytesIO()
    largest = images[-1]
    largest.save(
        buf,
        format="ICO",
        sizes=[(s, s) for s in ICO_SIZES],
        append_images=images[:-1],
    )
    return buf.getvalue()


def icns_bytes() -> bytes:
    images = [_png(size) for size in ICNS_SIZES]
    buf = io.BytesIO()
    images[-1].save(buf, format="ICNS", append_images=images[:-1])
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare with the files")
    args = parser.parse_args(argv)
    wanted = {OUT_DIR / f"{NAME}.ico": ico_bytes(), OUT_DIR / f"{NAME}.icns": icns_bytes()}
    stale = [
        path for path, data in wanted.items() if not path.is_file() or path.read_bytes() != data
    ]
    if args.check:
        for path in stale:
            print(f"out of date: {path.relative_to(ROOT)} (run python packaging/make_icons.py)")
        return 1 if stale else 0
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for path, data in wanted.items():
        path.write_bytes(data)
        print(f"wrote {path.relative_to(ROOT)} ({len(data) // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
