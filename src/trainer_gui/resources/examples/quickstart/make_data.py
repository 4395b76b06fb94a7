"""Generate the quickstart dataset: three interleaved spiral arms, plus two noise features.

Run once from anywhere; it rewrites data/train/spirals.csv and data/test/spirals.csv next to this
file. The output is deterministic (fixed seed), so re-running it gives the same files.

Columns: x1, x2 (the spiral), x3, x4 (pure noise the model must learn to ignore), label (0, 1, 2).
"""

from __future__ import annotations

import csv
import math
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
N_CLASSES = 3
SEED = 7


def make_rows(n_per_class: int, rng: random.Random) -> list[list[float | int]]:
    rows: list[list[float | int]] = []
    for label in range(N_CLASSES):
        for _ in range(n_per_class):
            t = rng.uniform(0.0, 1.0)  # position along the arm
            radius = 0.2 + 2.0 * t
            angle = 2.0 * math.pi * label / N_CLASSES + 4.0 * t + rng.gauss(0.0, 0.4)
            x1 = radius * math.cos(angle) + rng.gauss(0.0, 0.05)
            x2 = radius * math.sin(angle) + rng.gauss(0.0, 0.05)
            x3 = rng.gauss(0.0, 1.0)
            x4 = rng.uniform(-1.0, 1.0)
            rows.append([round(x1, 4), round(x2, 4), round(x3, 4), round(x4, 4), label])
    rng.shuffle(rows)
    return rows


def write(path: Path, rows: list[list[float | int]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["x1", "x2", "x3", "x4", "label"])
        writer.writerows(rows)


def main() -> None:
    rng = random.Random(SEED)
    write(HERE / "data" / "train" / "spirals.csv", make_rows(600, rng))
    write(HERE / "data" / "test" / "spirals.csv", make_rows(200, rng))
    print(f"wrote {HERE / 'data'}")


if __name__ == "__main__":
    main()
