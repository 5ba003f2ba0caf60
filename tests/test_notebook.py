"""notebooks/colab.ipynb executed headless on CPU (nbclient), with its parameter cell made small:
every cell must run, so the notebook cannot rot."""

import os

import pytest
from conftest import ROOT

NOTEBOOK = os.path.join(ROOT, "notebooks", "colab.ipynb")


@pytest.mark.slow
def test_the_colab_notebook_runs_headless(tmp_path):
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    (parameters,) = [
        cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])
    ]
    parameters.source += f"\nEPOCHS = 2\nWORKDIR = {str(tmp_path / 'run')!r}\n"
    client = nbclient.NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": os.path.join(ROOT, "notebooks")}},
    )
    client.execute()
    outputs = {
        index: "".join(output.get("text", "") for output in cell.get("outputs", []))
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code"
    }
    text = "\n".join(outputs.values())
    assert "chance-level MAP" in text  # the main job's report
    assert "data-set rows of the 5 nearest images" in text
    assert "(8, 16) True" in text  # the gradient of the likelihood
    assert "epoch 2/2" in text  # fit's per-epoch summaries show in a fresh kernel
    images = [
        output
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if "image/png" in output.get("data", {})
    ]
    assert len(images) == 2  # training curves and PR curves, inline
    assert os.path.exists(tmp_path / "run" / "results.json")
