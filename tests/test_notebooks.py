"""The notebooks in notebooks/ (jupytext percent format) execute without error."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
YE = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "ye2024" / "redpajama_runs.csv"


def _execute(name: str):
    nb = jupytext.read(NOTEBOOKS / name)
    client = nbclient.NotebookClient(nb, timeout=900, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()
    return nb


def _outputs(nb, output_type: str) -> list:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if o.get("output_type") == output_type]


def test_notebooks_are_percent_format():
    for path in NOTEBOOKS.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "format_name: percent" in text and "# %%" in text, path.name


@pytest.mark.slow
def test_quickstart_executes():
    nb = _execute("quickstart.py")
    images = [o for o in _outputs(nb, "display_data") if "image/png" in o.get("data", {})]
    assert len(images) == 4  # the report's step, size, mixing and residual figures
    text = "".join(o.get("text", "") for o in _outputs(nb, "stream"))
    assert "[[mixing stage]]" in text and "predicted loss" in text
    blend = re.findall(r"^(0\.\d+) (web|code|books|papers|wiki)$", text, re.M)
    assert blend and abs(sum(float(w) for w, _ in blend) - 1) < 1e-9   # the exported Megatron blend


@pytest.mark.slow
@pytest.mark.skipif(not YE.exists(), reason="../shared/data/ye2024 not present")
def test_ye2024_notebook_executes():
    nb = _execute("ye2024_redpajama.py")
    text = "".join(o.get("text", "") for o in _outputs(nb, "stream"))
    assert "mean |relative error|" in text and "RedPajama default" in text
