"""The lab notebook runs headless (nbclient) on a small setting: every cell runs, figures are
made. Needs ../shared (the dataset and weights; the notebook would otherwise download)."""
import os
from pathlib import Path

import pytest

from conftest import needs_shared_data, needs_shared_weights, shared_dir

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "transfer_learning.ipynb"


@needs_shared_data
@needs_shared_weights
def test_notebook_runs_headless(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("CATDOG_LAB_EPOCHS", "1")
    monkeypatch.setenv("CATDOG_LAB_FINE_TUNE_EPOCHS", "1")
    monkeypatch.setenv("CATDOG_LAB_SUBSET", "40")
    monkeypatch.setenv("CATDOG_SHARED", str(shared_dir()))
    monkeypatch.setenv("CATDOG_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    import catdog  # the kernel imports the same catdog the tests do (installed or in-tree)

    monkeypatch.setenv("PYTHONPATH", str(Path(catdog.__file__).resolve().parents[1]))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code), "a cell did not run"
    errors = [o for c in code for o in c.outputs if o.get("output_type") == "error"]
    assert not errors, errors
    images = [o for c in code for o in c.outputs if "image/png" in o.get("data", {})]
    # samples, augmentation, curves (x2), predictions
    assert len(images) >= 5, f"only {len(images)} figures were shown"
    text = "".join(o.get("text", "") for c in code for o in c.outputs)
    assert "Trainable params: 1,281" in text and "Trainable params: 1,862,721" in text
    assert "Test accuracy" in text
    # the last section swaps the base (EfficientNetB0, random weights without a network)
    assert "EfficientNetB0: 237 layers; fine-tuning would start at 'block6a_expand_conv'" in text
