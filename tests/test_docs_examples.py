"""The documentation's example scripts run as shown (so the docs cannot go stale silently)."""

import runpy
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"


@pytest.mark.parametrize(
    "script",
    ["sphere_geodesic.py", "custom_solver.py", "own_vae.py", pytest.param("trained_model.py", marks=pytest.mark.slow)],
)
def test_example_runs(script, capsys):
    runpy.run_path(str(EXAMPLES / script), run_name="__main__")
    assert capsys.readouterr().out.strip(), f"{script} printed nothing"


def test_pythae_example_runs(capsys):
    """A model from another VAE library (pythae is in the test extra; skipped where it is missing)."""
    pytest.importorskip("pythae")
    runpy.run_path(str(EXAMPLES / "pythae_vae.py"), run_name="__main__")
    assert "converged 3/3" in capsys.readouterr().out
