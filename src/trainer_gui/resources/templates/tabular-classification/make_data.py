"""Make the fruit table: weight, diameter, sweetness and colour of apples, oranges and pears.

Standard library only, deterministic (fixed seed): running it again writes the same files.
Trainer GUI runs it once when it creates the project; run `python make_data.py` to redo it.

    data/train/fruit.csv   450 rows   weight_g,diameter_cm,sweetness,colour,fruit
    data/test/fruit.csv    150 rows
"""

from __future__ import annotations

import csv
import random
import sys
from pathlib import Path

SEED = 5
HEADER = ["weight_g", "diameter_cm", "sweetness", "colour", "fruit"]
# (weight mean, sd), (diameter mean, sd), (sweetness mean, sd), colour weights
FRUIT = {
    "apple": ((160, 25), (7.5, 0.7), (6.0, 1.2), {"red": 5, "green": 3, "yellow": 2}),
    "orange": ((190, 30), (8.0, 0.8), (7.0, 1.0), {"orange": 9, "yellow": 1}),
    "pear": ((175, 30), (6.8, 0.7), (6.5, 1.3), {"green": 6, "yellow": 4, "red": 1}),
}


def _rows(per_class: int, rng: random.Random) -> list[list[object]]:
    rows: list[list[object]] = []
    for name, (weight, diameter, sweet, colours) in FRUIT.items():
        palette = list(colours)
        for _ in range(per_class):
            rows.append(
                [
                    round(rng.gauss(*weight), 1),
                    round(rng.gauss(*diameter), 2),
                    round(min(10.0, max(0.0, rng.gauss(*sweet))), 1),
                    rng.choices(palette, weights=[colours[c] for c in palette])[0],
                    name,
                ]
            )
    rng.shuffle(rows)
    return rows


def _write(path: Path, rows: list[list[object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(HEADER)
        writer.writerows(rows)


def generate(project_dir: Path) -> None:
    """Write data/train/fruit.csv and data/test/fruit.csv under project_dir (nowhere else)."""
    rng = random.Random(SEED)
    _write(project_dir / "data" / "train" / "fruit.csv", _rows(150, rng))
    _write(project_dir / "data" / "test" / "fruit.csv", _rows(50, rng))


def main() -> int:
    here = Path(__file__).resolve().parent
    generate(here)
    print(f"wrote {here / 'data'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
