"""The notebooks run from top to bottom at their CI size, and are committed without outputs.

Each notebook has one code cell tagged ``parameters`` (the papermill convention) holding ``QUICK``; the
test runs the notebook with a cell setting ``QUICK = True`` inserted after it, in a fresh ``python3``
kernel whose working directory is a temporary folder, and fails on the first cell that raises.
The kernel's PyTorch and BLAS use one thread (``OMP_NUM_THREADS=1`` unless set): on a small CI machine
shared with other jobs, two threads contend and run several times slower than one.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
CI_PARAMETERS = "QUICK = True  # injected by tests/test_notebooks.py"
#: Seconds a notebook may run at its CI size before the test fails (it takes well under a minute).
TIMEOUT = 600


def _parameters_index(notebook) -> int:
    tagged = [i for i, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1, "a notebook needs exactly one code cell tagged 'parameters'"
    assert "QUICK" in notebook.cells[tagged[0]].source, "the parameters cell must set QUICK"
    return tagged[0]


def test_there_are_notebooks():
    assert [path.name for path in NOTEBOOKS] == [
        "01_quickstart.ipynb", "02_train_on_your_data.ipynb", "03_osse_evaluation.ipynb", "04_eddies.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_is_committed_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    _parameters_index(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: cell {cell.get('id')} has outputs; clear them before committing"
            assert cell.execution_count is None, f"{path.name}: cell {cell.get('id')} has an execution count"
    assert "widgets" not in notebook.metadata, f"{path.name}: notebook metadata holds widget state"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_runs_at_ci_size(path, tmp_path, monkeypatch):
    notebook = nbformat.read(path, as_version=4)
    notebook.cells.insert(_parameters_index(notebook) + 1, nbformat.v4.new_code_cell(CI_PARAMETERS))
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend, as in Jupyter
    client = nbclient.NotebookClient(notebook, timeout=TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    began = time.perf_counter()
    client.execute()
    print(f"{path.name}: {time.perf_counter() - began:.1f} s")
