"""Names for clones and colours for runs (core/naming.py): readable, unique, stable."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer_gui.core.naming import (
    MAX_NAME,
    PALETTE,
    clone_name,
    run_color,
    run_colors,
    spec_names,
    unique_name,
)
from trainer_gui.core.spec.model import JOB_NAME_RE


def test_a_first_clone_gets_the_suffix_2() -> None:
    assert unique_name("mnist", ["mnist"]) == "mnist-2"


def test_clones_count_on_past_the_names_taken() -> None:
    assert unique_name("mnist", ["mnist", "mnist-2", "mnist-3"]) == "mnist-4"


def test_a_clone_of_a_clone_counts_on_from_the_original() -> None:
    assert unique_name("mnist-2", ["mnist", "mnist-2"]) == "mnist-3"


def test_a_number_that_is_part_of_the_name_is_kept() -> None:
    assert unique_name("resnet-50", ["resnet-50"]) == "resnet-50-2"


def test_a_gap_in_the_numbers_is_filled() -> None:
    assert unique_name("mnist", ["mnist", "mnist-3"]) == "mnist-2"


def test_names_are_compared_without_case() -> None:
    assert unique_name("MNIST", ["mnist", "Mnist-2"]) == "MNIST-3"


def test_a_long_name_stays_within_the_limit_and_valid() -> None:
    name = "a" * MAX_NAME
    taken = [name] + [f"{'a' * (MAX_NAME - 2)}-{n}" for n in range(2, 10)]

    out = unique_name(name, taken)

    assert out == f"{'a' * (MAX_NAME - 3)}-10"
    assert len(out) <= MAX_NAME and JOB_NAME_RE.match(out)


@pytest.mark.parametrize("name", ["bad name!", "-x-", "", "über", "a/b"])
def test_whatever_the_original_the_clone_is_a_valid_job_name(name: str) -> None:
    out = unique_name(name, [name])

    assert JOB_NAME_RE.match(out), out
    assert out != name


def test_spec_files_of_the_project_count_as_taken(tmp_path: Path) -> None:
    (tmp_path / "mnist.yaml").write_text("name: mnist\n")
    (tmp_path / "mnist-2.yml").write_text("name: mnist-2\n")
    (tmp_path / "notes.txt").write_text("")

    assert sorted(spec_names(tmp_path)) == ["mnist", "mnist-2"]
    assert clone_name("mnist", tmp_path, ["mnist-3"]) == "mnist-4"


def test_a_missing_project_folder_only_counts_the_jobs(tmp_path: Path) -> None:
    assert spec_names(tmp_path / "gone") == []
    assert clone_name("mnist", tmp_path / "gone", []) == "mnist-2"
    assert clone_name("mnist", None, ["mnist-2"]) == "mnist-3"


def test_a_runs_colour_depends_on_its_id_only() -> None:
    ids = [f"20261203-{n:04d}-abcd" for n in range(50)]

    first = [run_color(i) for i in ids]

    assert first == [run_color(i) for i in reversed(ids)][::-1]
    assert set(first) <= set(PALETTE)
    assert len(set(first)) > 5  # spread over the palette, not one colour for all


def test_runs_shown_together_get_distinct_colours_and_keep_their_own_when_free() -> None:
    ids = [f"run-{n}" for n in range(40)]
    clash = next((a, b) for a in ids for b in ids if a < b and run_color(a) == run_color(b))

    colours = run_colors(clash)

    assert colours[clash[0]] == run_color(clash[0])
    assert colours[clash[1]] != colours[clash[0]]
    assert run_colors([clash[1]]) == {clash[1]: run_color(clash[1])}


def test_more_runs_than_colours_still_each_get_one() -> None:
    ids = [f"run-{n}" for n in range(len(PALETTE) + 3)]

    colours = run_colors(ids)

    assert set(colours) == set(ids)
    assert len(set(list(colours.values())[: len(PALETTE)])) == len(PALETTE)
