"""Issue 10, family 1d: two outputs, or an output and an input, that are one file.

Checked by path (links resolved) and by ``os.path.samefile`` (hard links)
before any work: a usage error (exit 2), nothing written, every input intact.
"""

import os
from pathlib import Path

import pytest

from hostile_helpers import assert_clean_failure, invoke, make_data, snapshot


def _plot_ok():
    pytest.importorskip("matplotlib")


# builder() prepares files in the cwd and returns (arguments, words the line must hold)
def k_apply_same_two_outputs():
    return (["apply", "t.json", "z.npy", "-o", "P.npy", "--probabilities", "P.npy"],
            ["--probabilities 'P.npy'", "-o/--output 'P.npy'", "the same file"])


def k_apply_output_is_scores():
    return (["apply", "t.json", "z.npy", "-o", "z.npy"],
            ["-o/--output 'z.npy'", "not an input", "scores file 'z.npy'"])


def k_apply_probabilities_is_scores():
    return (["apply", "t.json", "z.npy", "-o", "d.npy", "--probabilities", "z.npy"],
            ["--probabilities 'z.npy'", "scores file"])


def k_apply_output_other_spelling():
    os.mkdir("sub")
    return (["apply", "t.json", "z.npy", "-o", "sub/../z.npy"], ["scores file 'z.npy'"])


def k_apply_output_absolute():
    return (["apply", "t.json", "z.npy", "-o", str(Path("z.npy").resolve())], ["scores file"])


def k_apply_output_symlink_to_scores():
    os.symlink("z.npy", "link.npy")
    return (["apply", "t.json", "z.npy", "-o", "link.npy"], ["'link.npy'", "scores file 'z.npy'"])


def k_apply_output_hard_link_to_scores():
    os.link("z.npy", "hard.npy")
    return (["apply", "t.json", "z.npy", "-o", "hard.npy"], ["'hard.npy'", "scores file"])


def k_apply_output_symlink_to_thresholds():
    os.symlink("t.json", "t.jsonl")
    return (["apply", "t.json", "z.npy", "-o", "t.jsonl"],
            ["'t.jsonl'", "threshold file 't.json'"])


def k_apply_outputs_linked_to_each_other():
    os.symlink("d.npy", "p.npy")
    return (["apply", "t.json", "z.npy", "-o", "d.npy", "--probabilities", "p.npy"],
            ["--probabilities 'p.npy'", "-o/--output 'd.npy'"])


def k_apply_outputs_linked_existing():
    Path("d.npy").write_bytes(b"old decisions")
    os.link("d.npy", "p.npy")
    return (["apply", "t.json", "z.npy", "-o", "d.npy", "--probabilities", "p.npy"],
            ["the same file"])


def k_apply_output_is_a_shard():
    import shutil
    shutil.copy("z.npy", "s_1.npy")
    shutil.copy("z.npy", "s_2.npy")
    return (["apply", "t.json", "s_*.npy", "-o", "s_2.npy"], ["scores file 's_2.npy'"])


def k_fit_output_is_classes_file():
    Path("names.json").write_text("\n".join(f"c{k}" for k in range(10)) + "\n")
    return (["fit", "z.npy", "--labels", "y.npy", "--classes", "names.json", "-o", "names.json"],
            ["-o/--output 'names.json'", "classes file"])


def k_fit_output_links_to_labels():
    os.symlink("y.npy", "y.json")
    return (["fit", "z.npy", "--labels", "y.npy", "-o", "y.json"], ["labels file 'y.npy'"])


def k_fit_plot_links_to_output():
    _plot_ok()
    os.symlink("out.json", "out.png")
    return (["fit", "z.npy", "--labels", "y.npy", "-o", "out.json", "--plot", "out.png"],
            ["--plot 'out.png'", "-o/--output 'out.json'"])


def k_fit_plot_links_to_scores():
    _plot_ok()
    os.symlink("z.npy", "p.png")
    return (["fit", "z.npy", "--labels", "y.npy", "-o", "out.json", "--plot", "p.png"],
            ["--plot 'p.png'", "scores file 'z.npy'"])


def k_evaluate_plot_links_to_thresholds():
    _plot_ok()
    os.symlink("t.json", "e.png")
    return (["evaluate", "t.json", "z.npy", "--labels", "y.npy", "--plot", "e.png"],
            ["--plot 'e.png'", "threshold file 't.json'"])


def k_evaluate_plot_hard_link_to_labels():
    _plot_ok()
    os.link("y.npy", "e.svg")
    return (["evaluate", "t.json", "z.npy", "--labels", "y.npy", "--plot", "e.svg"],
            ["labels file"])


ROWS = [k_apply_same_two_outputs, k_apply_output_is_scores, k_apply_probabilities_is_scores,
        k_apply_output_other_spelling, k_apply_output_absolute, k_apply_output_symlink_to_scores,
        k_apply_output_hard_link_to_scores, k_apply_output_symlink_to_thresholds,
        k_apply_outputs_linked_to_each_other, k_apply_outputs_linked_existing,
        k_apply_output_is_a_shard, k_fit_output_is_classes_file, k_fit_output_links_to_labels,
        k_fit_plot_links_to_output, k_fit_plot_links_to_scores,
        k_evaluate_plot_links_to_thresholds, k_evaluate_plot_hard_link_to_labels]


@pytest.mark.parametrize("build", ROWS, ids=[f.__name__[2:] for f in ROWS])
def test_outputs_that_are_one_file_are_a_usage_error(tmp_path, monkeypatch, build):
    monkeypatch.chdir(tmp_path)
    make_data(tmp_path)
    args, must = build()
    before = snapshot(tmp_path)
    res = invoke(args)
    assert_clean_failure(res, 2, must, tmp_path, before)


def test_distinct_outputs_beside_their_inputs_are_fine(tmp_path, monkeypatch):
    """The check refuses only one file under two roles: two distinct outputs
    beside the inputs are written."""
    monkeypatch.chdir(tmp_path)
    make_data(tmp_path)
    res = invoke(["apply", "t.json", "z.npy", "-o", "d.npy", "--probabilities", "p.npy"])
    assert res.code == 0, res
    assert Path("d.npy").stat().st_size > 0 and Path("p.npy").stat().st_size > 0
