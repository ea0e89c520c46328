"""The notebooks run top to bottom; the comparison notebook passes on this project and flags
activations computed from a perturbed weight file; the tutorial's U-Net and 1-D FCN sections
train through the trainer; the ResNet-FCN notebook finds every stage equal to torchvision's,
and without torchvision says what it skipped.

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
RESNET = NOTEBOOKS / "03_fcn_resnet_vs_torchvision.ipynb"

#: The tutorial notebook's first sibling section: the cells from here on train the U-Net and
#: the 1-D FCN.
SIBLING_SECTIONS = "## 9. U-Net on EM stacks"

#: The ResNet-FCN notebook's stages, each a row of its table.
RESNET_STAGES = ["stem", "layer1", "layer2", "layer3", "layer4", "head", "auxhead", "out",
                 "aux"]
RESNET_ROW = re.compile(r"^(?P<stage>\w+)\s+(?P<layer>[\w.]+)\s+(?P<shape>[\dx]+)\s+"
                        r"(?P<abs>\S+)\s+(?P<rel>\S+)\s+(?P<status>ok|DIFFERS|SHAPE.*)$")
SKIPPED = "skipped: torchvision is not installed"

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


def run_notebook(path, workdir, until=None, python_path=None, **settings):
    """Execute a notebook in ``workdir``, writing its files there, with ``FCN8_<NAME>``
    settings; return it executed. ``until``: stop before the first cell starting with this
    text; ``python_path``: a folder searched before the installed packages."""
    environment = {name: value for name, value in os.environ.items()
                   if not name.startswith("FCN8_")}
    if python_path is not None:
        environment["PYTHONPATH"] = os.pathsep.join(
            [str(python_path)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    environment["FCN8_NOTEBOOK_FAST"] = "1"
    environment["FCN8_LASAGNE_CACHE"] = str(workdir / "cache")
    environment["FCN8_OUTPUT_DIR"] = str(workdir)
    environment.update({f"FCN8_{name}": str(value) for name, value in settings.items()})
    notebook = nbformat.read(path, as_version=4)
    if until is not None:
        starts = [cell.source.startswith(until) for cell in notebook.cells]
        notebook.cells = notebook.cells[:starts.index(True)]
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


def images_of(notebook, marker=""):
    """The number of pictures shown by the code cells (whose source contains ``marker``)."""
    return sum(1 for cell in notebook.cells if cell.cell_type == "code" and marker in cell.source
               for output in cell.outputs if "image/png" in output.get("data", {}))


def log_lines(path, prefix):
    return [line for line in path.read_text().splitlines() if line.startswith(prefix)]


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
    for path in (TUTORIAL, COMPARISON, RESNET):
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
    # 3 diagrams, the data, the curves, the predictions; the U-Net's and the profile's
    assert images_of(notebook) >= 8

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

    _check_sibling_sections(notebook, tmp_path)

    # a second run on the same machine (same OUTPUT_DIR) replaces the first run's files
    again = run_notebook(TUTORIAL, tmp_path, until=SIBLING_SECTIONS)
    log = (run / "fcn8_output.log").read_text()
    assert len([line for line in log.splitlines() if line.startswith("EPOCH")]) == 2
    assert "--overwrite: removed the previous run's" in stdout_of(again, "result = train(")
    assert log.count("EPOCH 0:") == 1  # a new log, not the old one appended to


def _check_sibling_sections(notebook, workdir):
    """The U-Net and 1-D FCN sections: hand-derived counts (docs/sibling-models.md), a short
    run of each through the trainer, their pictures."""
    unet_table = stdout_of(notebook, "key_table(unet, (5, 1, 224, 224))")
    assert re.search(r"^concat1\s+5x1536x28x28\s+0$", unet_table, flags=re.M), unet_table
    assert re.search(r"^output_segmentation\s+5x2x224x224\s+130$", unet_table, flags=re.M)
    assert re.search(r"^encode_2\s+5x1024x14x14\s+9,441,280$", unet_table, flags=re.M)
    assert "36,973,762 parameter values, 36,958,146 trainable" in unet_table

    unet_run = workdir / "unet_tutorial_run"
    assert len(log_lines(unet_run / "unet_output.log", "EPOCH")) == 2  # FAST: 2 epochs
    assert (unet_run / "new_unet_model_best.npz").exists()
    printed = stdout_of(notebook, "unet_result = train(")
    assert "jacc val class 1" in printed and printed.count("FINAL MODEL: err test") == 1
    assert images_of(notebook, 'em_valid = load_dataset("synthetic_em"') == 1
    membrane_iou = re.search(r"membrane IoU (\S+)", stdout_of(notebook, "membrane IoU"))
    assert 0.0 <= float(membrane_iou[1]) <= 1.0

    fcn1d_table = stdout_of(notebook, "key_table(fcn1d, (4, 2, 200))")
    assert re.search(r"^conv7\s+4x64x200\s+102,464$", fcn1d_table, flags=re.M), fcn1d_table
    assert re.search(r"^final_conv\s+4x7x200\s+455$", fcn1d_table, flags=re.M)
    assert "722,767 parameter values, 721,867 trainable" in fcn1d_table

    fcn1d_run = workdir / "fcn1d_tutorial_run"
    epochs = log_lines(fcn1d_run / "fcn1D_output.log", "EPOCH")
    assert len(epochs) == 2 and all("jacc val per class ['0: " in line for line in epochs)
    assert stdout_of(notebook, "fcn1d_result = train(").count("FINAL MODEL: err test") == 1
    assert images_of(notebook, 'profile_valid = load_dataset("synthetic_profiles"') == 1
    right = re.search(r"profile 0: (\S+) of the samples labelled right",
                      stdout_of(notebook, "labelled right"))
    assert 0.0 <= float(right[1]) <= 1.0


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


@pytest.mark.slow
def test_resnet_notebook_finds_every_stage_equal_to_torchvision(tmp_path):
    pytest.importorskip("torchvision")
    notebook = run_notebook(RESNET, tmp_path)
    text = stdout_of(notebook, "compare_stages(theirs, ours)")
    rows = {}
    for line in text.splitlines():
        match = RESNET_ROW.match(line)
        if match:
            rows[match["stage"]] = match
    assert list(rows) == RESNET_STAGES, text
    for stage, row in rows.items():
        assert row["status"] == "ok", (stage, text)
        assert 0 <= float(row["rel"]) <= 1e-4 and math.isfinite(float(row["abs"])), stage
    # the fast size is 65x79: stem and pool /4 rounding up, output stride 8 from layer2 on
    assert rows["stem"]["shape"] == "1x64x17x20" and rows["layer1"]["shape"] == "1x256x17x20"
    assert rows["layer4"]["shape"] == "1x2048x9x10" and rows["head"]["shape"] == "1x6x9x10"
    assert rows["out"]["shape"] == rows["aux"]["shape"] == "1x6x65x79"
    assert verdict_line(text) == "all 9 stages match within 0.0001 of their largest value"
    assert "torchvision fcn_resnet50: 334 state-dict entries, 35,310,668 parameters" in \
        stdout_of(notebook, "randomize_batch_norm(reference")
    assert "35,310,668 trainable parameters; loaded 279 arrays" in \
        stdout_of(notebook, "load_fcn_resnet(net, state_dict)")
    differing = re.search(r"argmax class maps: (\d+) of 5135 pixels differ",
                          stdout_of(notebook, "argmax class maps"))
    assert int(differing[1]) <= 5  # only near-ties between two classes may flip
    # the image; the score maps; the channels of a stage
    assert images_of(notebook) == 3 and SKIPPED not in "".join(
        stdout_of(notebook, marker) for marker in ("compare_stages(theirs", "argmax class"))


@pytest.mark.slow
def test_resnet_notebook_without_torchvision_says_what_it_skips(tmp_path):
    hidden = tmp_path / "without_torchvision" / "torchvision"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text('raise ImportError("torchvision hidden by the test")\n')
    notebook = run_notebook(RESNET, tmp_path, python_path=hidden.parent)
    assert "torchvision not available (torchvision hidden by the test)" in \
        stdout_of(notebook, "HAVE_TORCH = False")
    for marker in ("randomize_batch_norm(reference", "load_fcn_resnet(net, state_dict)",
                   "compare_stages(theirs, ours)", "argmax class maps", "SHOWN_STAGE][0]"):
        assert stdout_of(notebook, marker).strip() == SKIPPED, marker
    assert images_of(notebook) == 1  # the image alone
