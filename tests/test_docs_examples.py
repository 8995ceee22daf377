"""The documentation's example scripts run as shown (so the docs cannot go stale silently)."""

import runpy
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"


@pytest.mark.parametrize(
    "script",
    ["sphere_geodesic.py", "custom_solver.py", pytest.param("trained_model.py", marks=pytest.mark.slow)],
)
def test_example_runs(script, capsys):
    runpy.run_path(str(EXAMPLES / script), run_name="__main__")
    assert capsys.readouterr().out.strip(), f"{script} printed nothing"
