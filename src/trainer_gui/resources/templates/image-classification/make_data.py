"""Draw the image dataset: 16x16 grayscale circles, crosses and squares, as binary PGM files.

Standard library only, deterministic (fixed seed): running it again writes the same files.
Trainer GUI runs it once when it creates the project; run `python make_data.py` to redo it.

    data/train/<class>/<class>-000.pgm ...   60 images per class
    data/test/<class>/<class>-000.pgm ...    20 images per class
"""

from __future__ import annotations

import math
import random
import sys
from pathlib import Path

SIZE = 16
CLASSES = ("circle", "cross", "square")
SEED = 11
COUNTS = {"train": 60, "test": 20}


def _shape(kind: str, rng: random.Random) -> list[list[float]]:
    """One image as rows of 0..1 intensities: a shape at a random place and size, plus noise."""
    r = rng.uniform(3.0, 6.0)
    cx = rng.uniform(r + 1, SIZE - r - 2)
    cy = rng.uniform(r + 1, SIZE - r - 2)
    width = rng.uniform(0.6, 1.1)
    img = [[0.0] * SIZE for _ in range(SIZE)]
    for y in range(SIZE):
        for x in range(SIZE):
            dx, dy = x - cx, y - cy
            if kind == "circle":
                on = abs(math.hypot(dx, dy) - r) < width
            elif kind == "cross":
                on = (abs(dx) < width and abs(dy) <= r) or (abs(dy) < width and abs(dx) <= r)
            else:  # square outline
                edge = max(abs(dx), abs(dy))
                on = abs(edge - r) < width
            img[y][x] = 1.0 if on else 0.0
    level = rng.uniform(0.6, 1.0)
    return [[min(1.0, max(0.0, v * level + rng.gauss(0.08, 0.08))) for v in row] for row in img]


def _write_pgm(path: Path, img: list[list[float]]) -> None:
    header = f"P5\n{SIZE} {SIZE}\n255\n".encode("ascii")
    pixels = bytes(round(v * 255) for row in img for v in row)
    path.write_bytes(header + pixels)


def generate(project_dir: Path) -> None:
    """Write data/train and data/test under project_dir (and nowhere else)."""
    rng = random.Random(SEED)
    for split, count in COUNTS.items():
        for kind in CLASSES:
            folder = project_dir / "data" / split / kind
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                _write_pgm(folder / f"{kind}-{i:03d}.pgm", _shape(kind, rng))


def main() -> int:
    here = Path(__file__).resolve().parent
    generate(here)
    print(f"wrote {here / 'data'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
