"""Execute every notebook in notebooks/ (quick settings) and fail on any cell error.

The notebooks read ``BAYESMIX_QUICK=1`` and then fit fewer models with fewer random
starts and a short sampler, so the whole run stays within a few minutes; the statistical
content is checked by the other tests, this one checks that the tutorials run.

The kernel is the ``python3`` kernelspec that ipykernel installs into the environment
running pytest (``<venv>/share/jupyter/kernels/python3``, listed first by
jupyter_client inside a venv); its command ``python`` is replaced by jupyter_client with
``sys.executable``, so the notebooks run with this interpreter even when the venv is not
activated. The test checks this with an extra first cell that prints the kernel's
``sys.executable``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
CELL_TIMEOUT = 600  # seconds per cell; a fresh PyTensor cache compiles for ~1 min


def test_notebooks_found():
    assert NOTEBOOKS, f"no notebooks in {NOTEBOOK_DIR}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path):
    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), (
        f"{path.name} is stored with outputs; clear them before committing")
    # An extra first cell reports the kernel's interpreter, so that a notebook never
    # runs against another installation of bayesmix by accident.
    nb.cells.insert(0, nbformat.v4.new_code_cell("import sys; print(sys.executable)"))
    env = {**os.environ, "BAYESMIX_QUICK": "1"}
    client = nbclient.NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},  # cwd of the kernel
    )
    client.execute(env=env)  # raises CellExecutionError (with the traceback) on any error
    kernel_python = "".join(o.get("text", "") for o in nb.cells[0].outputs).strip()
    assert os.path.normpath(kernel_python) == os.path.normpath(sys.executable), (
        f"the notebook kernel ran {kernel_python}, not this interpreter {sys.executable}")
