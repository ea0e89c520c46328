"""The notebooks run top to bottom; the comparison notebook passes on this project and flags
activations computed from a perturbed weight file.

Each notebook is executed with nbclient in a fresh kernel whose working directory is the
test's ``tmp_path``; its first cell reads its settings from ``FCN8_*`` environment variables
(``FCN8_NOTEBOOK_FAST=1`` for the small sizes). Every test takes about a minute or more on
two cores, so they are marked slow.
"""

import math
import os
import re
from pathlib import Path

import nbformat
import numpy as np
import pytensor.tensor as T
import pytest
from nbclient import NotebookClient

from fcn8_lasagne.data import render_synthetic_polyp
from fcn8_lasagne.inference import dump_activations
from fcn8_lasagne.layers import get_all_param_values, set_all_param_values
from fcn8_lasagne.models import buildFCN8
from fcn8_lasagne.weights import save_npz

# Full-size networks: one such module at a time (pytest.ini: --dist loadgroup), so that
# two of them never share the machine's 24 GB.
pytestmark = pytest.mark.xdist_group("large_memory")

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
TUTORIAL = NOTEBOOKS / "01_fcn8_tutorial.ipynb"
COMPARISON = NOTEBOOKS / "02_compare_layer_outputs.ipynb"

#: The tutorial's FCN-8 layers with outputs of their own (docs/fcn8-semantics.md §1).
FCN8_LAYERS = [
    "conv1_1", "conv1_2", "pool1", "conv2_1", "conv2_2", "pool2",
    "conv3_1", "conv3_2", "conv3_3", "pool3", "conv4_1", "conv4_2", "conv4_3", "pool4",
    "conv5_1", "conv5_2", "conv5_3", "pool5", "fc6", "fc6_dropout", "fc7", "fc7_dropout",
    "score_fr", "score2", "score_pool4", "score_fused", "score4", "score_pool3", "score_final",
    "upsample", "score", "final_dimshuffle", "final_reshape", "probs", "probs_reshape",
    "probs_dimshuffle",
]

#: score_pool3.W in Lasagne's parameter order, and the layers its value reaches.
SCORE_POOL3_W = 38
BELOW_SCORE_POOL3 = ["score_pool3", "score_final", "upsample", "score", "final_dimshuffle",
                     "final_reshape", "probs", "probs_reshape", "probs_dimshuffle"]

TABLE_ROW = re.compile(r"^(?P<layer>\w+)\s+(?P<shape>[\dx]+(?: vs [\dx-]+)?|-(?: vs \S+)?)\s+"
                       r"(?P<abs>\S+)\s+(?P<rel>\S+)\s+(?P<status>ok|DIFFERS|[A-Z ]+)$")


def run_notebook(path, workdir, **settings):
    """Execute a notebook in ``workdir``, writing its files there, with ``FCN8_<NAME>``
    settings; return it executed."""
    environment = {name: value for name, value in os.environ.items()
                   if not name.startswith("FCN8_")}
    environment["FCN8_NOTEBOOK_FAST"] = "1"
    environment["FCN8_LASAGNE_CACHE"] = str(workdir / "cache")
    environment["FCN8_OUTPUT_DIR"] = str(workdir)
    environment.update({f"FCN8_{name}": str(value) for name, value in settings.items()})
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(workdir)}})
    client.execute(env=environment)
    return notebook


def stdout_of(notebook, marker):
    """The printed text of the one code cell whose source contains ``marker``."""
    cells = [cell for cell in notebook.cells
             if cell.cell_type == "code" and marker in cell.source]
    assert len(cells) == 1, f"{len(cells)} cells contain {marker!r}"
    return "".join(output.get("text", "") for output in cells[0].outputs
                   if output.output_type == "stream" and output.name == "stdout")


def images_of(notebook):
    return sum(1 for cell in notebook.cells if cell.cell_type == "code"
               for output in cell.outputs if "image/png" in output.get("data", {}))


def comparison_rows(text):
    """Layer → (shape, max abs error, max rel error, status) from a printed comparison."""
    rows = {}
    for line in text.splitlines():
        match = TABLE_ROW.match(line)
        if match and match["layer"] != "layer":
            rows[match["layer"]] = (match["shape"], float(match["abs"]), float(match["rel"]),
                                    match["status"])
    return rows


def verdict_line(text):
    lines = [line for line in text.splitlines() if line.startswith("VERDICT: ")]
    assert len(lines) == 1, text
    return lines[0][len("VERDICT: "):]


def test_notebooks_are_committed_without_outputs():
    for path in (TUTORIAL, COMPARISON):
        notebook = nbformat.read(path, as_version=4)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, path.name


@pytest.mark.slow
def test_tutorial_notebook_runs_top_to_bottom(tmp_path):
    notebook = run_notebook(TUTORIAL, tmp_path)
    table = stdout_of(notebook, "format_layer_table(fcn8_rows)")
    assert "score_fused" in table and "score_pool4 +(5, 5)" in table  # 224x224: doc §3
    assert "upsample +(28, 28)" in table and "134,271,436" in table
    siblings = stdout_of(notebook, "for title, builder in")
    assert re.search(r"FCN-16\s+35\s+134,273,928", siblings), siblings
    assert re.search(r"FCN-32\s+32\s+134,285,124", siblings), siblings
    # 3 diagrams, the data, the curves, the predictions
    assert images_of(notebook) >= 6

    run = tmp_path / "fcn8_tutorial_run"
    epoch_lines = [line for line in (run / "fcn8_output.log").read_text().splitlines()
                   if line.startswith("EPOCH")]
    assert len(epoch_lines) == 2  # FCN8_NOTEBOOK_FAST: 2 epochs
    assert (run / "new_fcn8_model_best.npz").exists()
    assert f"2 epochs in {run / 'fcn8_output.log'}" in stdout_of(notebook, "EPOCH_LINE")

    scores = stdout_of(notebook, "confusion = evaluate(")
    per_class = dict(re.findall(r"^(background|polyp)\s+(\S+)", scores, flags=re.M))
    assert set(per_class) == {"background", "polyp"}
    assert all(0.0 <= float(iou) <= 1.0 for iou in per_class.values())

    # a second run on the same machine (same OUTPUT_DIR) replaces the first run's files
    again = run_notebook(TUTORIAL, tmp_path)
    log = (run / "fcn8_output.log").read_text()
    assert len([line for line in log.splitlines() if line.startswith("EPOCH")]) == 2
    assert "--overwrite: removed the previous run's" in stdout_of(again, "result = train(")
    assert log.count("EPOCH 0:") == 1  # a new log, not the old one appended to


def _check_every_layer_matches(text):
    rows = comparison_rows(text)
    assert list(rows) == FCN8_LAYERS, text
    for layer, (shape, max_abs, max_rel, status) in rows.items():
        assert status == "ok", (layer, text)
        assert math.isfinite(max_abs) and 0 <= max_rel <= 1e-4, (layer, max_rel)
    assert verdict_line(text).startswith("all 36 layers match within rtol 0.0001")
    return rows


@pytest.mark.slow
def test_comparison_notebook_finds_every_layer_equal(tmp_path):
    notebook = run_notebook(COMPARISON, tmp_path)
    assert (tmp_path / "fcn8_seeded_weights.npz").exists()
    assert (tmp_path / "other_activations.npz").exists()
    rows = {}
    for key in ("jax", "numpy", "other"):
        rows[key] = _check_every_layer_matches(stdout_of(notebook, f'run_comparison("{key}"'))
    # the fast size is 48x64: conv1_1 adds 198, the head crops back to the image
    assert rows["numpy"]["conv1_1"][0] == "1x64x246x262"
    assert rows["numpy"]["probs_dimshuffle"][0] == "1x2x48x64"
    # the file written by dump_activations holds exactly what the project computes
    assert all(max_abs == 0 for _, max_abs, _, _ in rows["other"].values())
    final = stdout_of(notebook, "OVERALL")
    assert final.splitlines()[-1] == "OVERALL: all 3 comparisons pass"
    assert images_of(notebook) >= 1 + 4 + 1  # the input, 4 feature-map grids, histograms


@pytest.mark.slow
def test_comparison_notebook_flags_a_perturbed_weight_file(tmp_path):
    # weights, and the activations another implementation would have saved had it been
    # given the same weights with score_pool3.W shifted
    np.random.seed(1)
    input_var = T.tensor4("input")
    net = buildFCN8(3, input_var, n_classes=2)
    save_npz(net["probs"], tmp_path / "weights.npz")
    values = get_all_param_values(net["probs"])
    assert values[SCORE_POOL3_W].shape == (2, 256, 1, 1)
    values[SCORE_POOL3_W] = values[SCORE_POOL3_W] + 0.05
    set_all_param_values(net["probs"], values)
    pixels, _ = render_synthetic_polyp(np.random.default_rng(7), (48, 64))
    image = pixels.astype(np.float32).transpose(2, 0, 1) / 255.0
    dump_activations(net, input_var, image, tmp_path / "perturbed_activations.npz")
    del net, values

    notebook = run_notebook(COMPARISON, tmp_path, WEIGHTS=tmp_path / "weights.npz",
                            OTHER_ACTIVATIONS=tmp_path / "perturbed_activations.npz",
                            OTHER_NAME="perturbed", COMPARISONS="other")
    text = stdout_of(notebook, 'run_comparison("other"')
    rows = comparison_rows(text)
    assert list(rows) == FCN8_LAYERS, text
    differing = [layer for layer, (_, _, _, status) in rows.items() if status != "ok"]
    assert differing == BELOW_SCORE_POOL3, text
    assert all(rows[layer][2] > 1e-3 for layer in BELOW_SCORE_POOL3)
    assert verdict_line(text).startswith("9 of 36 layers differ (rtol 0.0001): score_pool3 (rel ")
    assert "input (1, 3, 48, 64): the input stored in" in stdout_of(notebook, "origin =")
    final = stdout_of(notebook, "OVERALL")
    assert final.splitlines()[-1] == "OVERALL: 1 of 1 comparisons FAIL: other"
    assert not (tmp_path / "fcn8_seeded_weights.npz").exists()  # the given weights were used
