"""The solver benchmark: statistics from hand-made records, best-known, stochman baseline, JSON, CLI."""

import json

import numpy as np
import pytest
import torch
from stochman.curves import CubicSpline

import vaemanifold as vm
from vaemanifold import analytic
from vaemanifold.cli import main
from vaemanifold.evaluation import benchmark as bm
from vaemanifold.evaluation import problems as pb
from vaemanifold.evaluation import report
from vaemanifold.evaluation.pairs import draw_pairs

D64 = torch.float64


def hand_run(label, lengths, converged=None, seconds=1.0, reasons=None):
    """A SolverRun with given per-pair lengths (no solver behind it)."""
    length = torch.tensor(lengths, dtype=D64)
    converged = torch.ones(len(length), dtype=torch.bool) if converged is None else torch.tensor(converged)
    if reasons is None:
        reasons = [None if ok else f"{label} failed on pair {b}" for b, ok in enumerate(converged.tolist())]
    return bm.SolverRun(
        label=label,
        solver=label,
        budget={},
        length=length,
        energy=length**2,
        grid_change=torch.zeros_like(length),
        converged=converged,
        reasons=reasons,
        seconds=seconds,
        iterations=7,
        evaluations=100,
    )


def test_summary_statistics_from_hand_made_records():
    best = torch.ones(5, dtype=D64) * 2
    run = hand_run("a", [2.0, 2.01, 2.04, 2.2, 4.0], converged=[True, True, False, True, False], seconds=10.0)
    row = bm.summarize(run, best)
    ratios = np.array([1.0, 1.005, 1.02, 1.1, 2.0])
    assert row["median_length_ratio"] == pytest.approx(1.02)
    assert row["p90_length_ratio"] == pytest.approx(np.percentile(ratios, 90))
    assert row["p90_length_ratio"] == pytest.approx(1.1 + 0.6 * 0.9)  # linear interpolation, by hand
    assert row["frac_within_1pct"] == pytest.approx(2 / 5)
    assert row["median_seconds_per_pair"] == pytest.approx(2.0)
    assert row["failures"] == 2
    assert row["failure_example"] == "a failed on pair 2"
    assert row["evaluations_per_pair"] == pytest.approx(20.0)


def test_floors_are_seconds_over_each_runs_own_floor():
    problem = pb.sphere_problem(pairs=3)
    floor = bm.measure_floor(problem, grid=64, repeats=2)
    assert floor > 0
    head = [hand_run("a", [2.0, 2.0, 2.0], seconds=0.3)]
    ladder = {"a": [hand_run("a@x=1", [1.0, 4.0, 4.0], seconds=0.6), head[0]]}
    assert bm.BenchmarkResult(problem, head, ladder).summary()[0]["floors_per_pair"] is None
    head[0].floor, ladder["a"][0].floor = 0.05, 0.1
    result = bm.BenchmarkResult(problem, head, ladder)
    assert result.summary()[0]["floors_per_pair"] == pytest.approx(0.1 / 0.05)
    steps = result.time_to_quality()["a"]
    assert [s["floors_per_pair"] for s in steps] == pytest.approx([2.0, 2.0])
    assert steps[0]["p90_length_ratio"] == pytest.approx(np.percentile([0.5, 2.0, 2.0], 90))
    assert result.to_dict()["floor_seconds_per_pair"] == pytest.approx(0.075)


def test_every_run_of_a_benchmark_has_a_floor():
    problem = pb.sphere_problem(pairs=2)
    result = bm.run_benchmark(
        problem, {"linear": {}, "gauss_newton": {}}, {"gauss_newton": ("tol", (10, 1))}, reference=(), grid=64
    )
    assert all(run.floor and run.floor > 0 for run in result.all_runs)
    assert all(row["floors_per_pair"] is not None for row in result.summary())


def test_non_finite_lengths_are_left_out_of_ratios_but_not_within():
    best = torch.ones(4, dtype=D64)
    run = hand_run("a", [1.0, float("nan"), 1.5, float("inf")], converged=[True, False, True, False])
    stats = bm.ratio_statistics(run.length / best)
    assert stats["median_length_ratio"] == pytest.approx(1.25)
    assert stats["frac_within_1pct"] == pytest.approx(1 / 4)
    truth = torch.tensor([1.0, 1.0, 1.0, 1.0], dtype=D64)
    row = bm.summarize(run, best, truth)
    assert row["median_error_vs_truth"] == pytest.approx(0.25)
    assert row["max_error_vs_truth"] == pytest.approx(0.5)
    assert row["failures"] == 2


def test_best_known_is_the_minimum_over_methods():
    runs = [
        hand_run("a", [3.0, 1.0, float("nan"), 5.0]),
        hand_run("b", [2.0, 4.0, 2.5, float("nan")]),
        hand_run("c", [2.5, 1.5, 3.0, 6.0]),
    ]
    best, source = bm.best_known(runs)
    assert torch.equal(best, torch.tensor([2.0, 1.0, 2.5, 5.0], dtype=D64))
    assert source == ["b", "a", "b", "a"]
    # a length the dense grid does not resolve (doubling it changes the length by more than BEST_GRID_TOL) never counts
    unresolved = hand_run("d", [1.0, 0.5, 1.0, 1.0])
    unresolved.grid_change = torch.tensor([0.0, 2 * bm.BEST_GRID_TOL, 0.0, 0.0], dtype=D64)
    best, source = bm.best_known(runs + [unresolved])
    assert torch.equal(best, torch.tensor([1.0, 1.0, 1.0, 1.0], dtype=D64)) and source == ["d", "a", "d", "d"]
    nothing, label = bm.best_known([hand_run("a", [float("nan")])])
    assert torch.isnan(nothing).all() and label == [None]
    with pytest.raises(ValueError, match="at least one run"):
        bm.best_known([])


def test_best_known_includes_ladder_runs_and_ratios_use_it():
    problem = pb.sphere_problem(pairs=3)
    head = [hand_run("a", [2.0, 2.0, 2.0]), hand_run("b", [3.0, 1.0, 2.5])]
    ladder = {"a": [hand_run("a@x=1", [1.0, 4.0, 4.0]), head[0]]}
    result = bm.BenchmarkResult(problem, head, ladder)
    best, source = result.best()
    assert torch.equal(best, torch.tensor([1.0, 1.0, 2.0], dtype=D64))
    assert source == ["a@x=1", "b", "a"]
    rows = {r["solver"]: r for r in result.summary()}
    assert rows["a"]["median_length_ratio"] == pytest.approx(2.0)
    assert rows["b"]["median_length_ratio"] == pytest.approx(1.25)
    ratios = [r["length_ratio"] for r in result.records() if r["solver"] == "b"]
    assert ratios == pytest.approx([3.0, 1.0, 1.25])
    assert [s["label"] for s in result.time_to_quality()["a"]] == ["a@x=1", "a"]


def test_stochman_baseline_runs_and_is_measured_on_the_common_grid():
    M = analytic.sphere_manifold()
    z0, z1 = analytic.sphere_pairs(3, seed=2)
    grid = 300
    run = bm.run_stochman(M, z0, z1, grid=grid)
    assert isinstance(run.curve, CubicSpline)
    assert 1 <= run.iterations <= bm.STOCHMAN_ITERATIONS
    assert run.evaluations == run.iterations * 3 * bm.STOCHMAN_GRID
    # the length is the data-space polyline on `grid` equally spaced times, computed here by hand
    t = torch.linspace(0, 1, grid, dtype=D64)
    with torch.no_grad():
        points = analytic.sphere_chart(run.curve(t).reshape(3, grid, 2))
    by_hand = points.diff(dim=1).norm(dim=-1).sum(dim=1)
    torch.testing.assert_close(run.length, by_hand)
    truth = analytic.great_circle_distance(z0, z1)
    # no curve is shorter than the great circle, up to the chords' deficit L^2 / (24 N^2) < 1e-5
    assert (run.length >= truth * (1 - 1e-5)).all()
    torch.testing.assert_close(run.length, truth, rtol=1e-3, atol=0)
    assert run.converged.dtype == torch.bool and len(set(run.converged.tolist())) == 1  # all-or-nothing
    for ok, reason in zip(run.converged.tolist(), run.reasons):
        assert (reason is None) == ok


def test_run_solver_matches_connecting_geodesic():
    M = analytic.sphere_manifold()
    z0, z1 = analytic.sphere_pairs(2, seed=3)
    run = bm.run_solver(M, z0, z1, "spline", {"iterations": 50}, grid=128)
    direct = vm.connecting_geodesic(M, z0, z1, method="spline", iterations=50, grid=128)
    torch.testing.assert_close(run.length, direct.length)
    assert run.iterations == direct.iterations and run.setup_seconds > 0
    with pytest.raises(ValueError, match="unknown solver"):
        bm.run_solver(M, z0, z1, "nope", {})
    with pytest.raises(ValueError, match="repeats"):
        bm.run_solver(M, z0, z1, "graph", {"k": 3}, extra={"k": 4})


def test_run_benchmark_json_has_the_documented_keys():
    problem = pb.sphere_problem(pairs=2, seed=1)
    budgets = {"linear": {}, bm.STOCHMAN: {"max_iter": 5}}
    ladders = {bm.STOCHMAN: ("max_iter", (0.4, 1))}  # factors: max_iter 2, then the budget's 5
    result = bm.run_benchmark(problem, budgets, ladders, reference=())
    # the ladder step equal to the budget reuses the head-to-head run
    assert result.ladders[bm.STOCHMAN][0].budget == {"max_iter": 2}
    assert result.ladders[bm.STOCHMAN][1] is result.runs[1]
    settings = report.settings(bm.MEASURE_GRID, 2, 1, True, "cpu", budgets, ladders, ())
    document = json.loads(json.dumps(report.to_json([result], settings), allow_nan=False))
    assert set(report.SETTINGS_KEYS) <= set(document["settings"])
    assert document["settings"]["threads"] == torch.get_num_threads()
    model = document["models"][0]
    assert len(model["summary"]) == 2
    for row in model["summary"]:
        assert set(report.SUMMARY_KEYS) <= set(row)
        assert "median_error_vs_truth" in row  # the sphere has a truth
    assert len(model["records"]) == 2 * 2
    for record in model["records"]:
        assert set(report.RECORD_KEYS) <= set(record)
    best = torch.tensor(model["best_known"], dtype=D64)
    lengths = torch.tensor([[r["length"] for r in model["records"] if r["solver"] == s] for s in ("linear", "stochman")], dtype=D64)
    assert (best <= lengths.min(dim=0).values + 1e-15).all()
    assert set(model["time_to_quality"]) == {"linear", bm.STOCHMAN}
    assert "| linear |" in report.markdown(document)
    with pytest.raises(ValueError, match="unknown methods"):
        bm.run_benchmark(problem, {"nope": {}})


def test_default_budgets_cover_every_registered_solver():
    assert set(bm.default_budgets()) == set(vm.SOLVERS) - set(bm.NOT_BENCHMARKED) | {bm.STOCHMAN}
    assert set(bm.default_budgets(quick=True)) == set(vm.SOLVERS) - set(bm.NOT_BENCHMARKED) | {bm.STOCHMAN}


def test_scaled_budget_scales_the_resolved_default():
    default = vm.SOLVERS["neural"]().iterations
    assert bm.scaled_budget("neural", {}, "iterations", 0.1) == {"iterations": max(1, round(default * 0.1))}
    assert bm.scaled_budget("neural", {"iterations": 40}, "iterations", 0.5) == {"iterations": 20}
    assert bm.scaled_budget("neural", {"iterations": 40}, "iterations", 1e-6) == {"iterations": 1}
    assert bm.scaled_budget("ode", {"tol": 1e-6}, "tol", 100.0)["tol"] == pytest.approx(1e-4)
    assert bm.scaled_budget(bm.STOCHMAN, {"max_iter": None}, "max_iter", 2) == {"max_iter": 2 * bm.STOCHMAN_ITERATIONS}
    with pytest.raises(ValueError, match="no option"):
        bm.scaled_budget("neural", {}, "nope", 2)
    with pytest.raises(ValueError, match="not numeric"):
        bm.scaled_budget("neural", {}, "activation", 2)


def test_draw_pairs_is_seeded_and_splits_same_and_cross_class():
    labels = torch.tensor([0, 0, 1, 1, 1, 2, 2, 3])
    pairs = draw_pairs(labels, 7, seed=4)
    again = draw_pairs(labels, 7, seed=4)
    assert torch.equal(pairs.first, again.first) and torch.equal(pairs.second, again.second)
    assert pairs.same_class.tolist() == [True] * 4 + [False] * 3
    assert torch.equal(pairs.same_class, labels[pairs.first] == labels[pairs.second])
    assert (pairs.first != pairs.second).all()
    with pytest.raises(ValueError, match="cross-class"):
        draw_pairs(torch.zeros(5, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="same-class"):
        draw_pairs(torch.arange(5), 2)


def test_cli_analytic_writes_the_three_files(tmp_path, capsys):
    out = tmp_path / "bench"
    argv = ["benchmark", "--analytic", "--quick", "--pairs", "2", "--methods", "linear,stochman",
            "--no-reference", "--out", str(out)]
    assert main(argv) == 0
    for name in ("benchmark.json", "benchmark.md", "time_to_quality.png"):
        assert (out / name).stat().st_size > 0
    document = json.loads((out / "benchmark.json").read_text())
    assert [m["name"] for m in document["models"]] == ["sphere", "mlp-d2", "mlp-d8"]
    assert document["settings"]["pairs"] == 2
    assert "## mlp-d8" in (out / "benchmark.md").read_text()
    assert main(["benchmark", "--analytic", "--methods", "nope", "--out", str(out)]) == 2
    assert "unknown methods" in capsys.readouterr().err


def counting_benchmarks(monkeypatch) -> list:
    """Patch bm.run_benchmark to record the name of every problem it benchmarks."""
    names, real = [], bm.run_benchmark

    def counted(problem, *args, **kwargs):
        names.append(problem.name)
        return real(problem, *args, **kwargs)

    monkeypatch.setattr(bm, "run_benchmark", counted)
    return names


def test_cli_resumes_an_interrupted_run_and_reruns_what_changed(tmp_path, monkeypatch, capsys):
    out = tmp_path / "bench"
    argv = ["benchmark", "--analytic", "--quick", "--pairs", "2", "--methods", "linear,stochman", "--no-reference",
            "--out", str(out)]
    assert main(argv) == 0
    whole = json.loads((out / "benchmark.json").read_text())
    # an interruption after the first decoder leaves its file holding that decoder only
    (out / "benchmark.json").write_text(json.dumps({**whole, "models": whole["models"][:1]}))
    benchmarked = counting_benchmarks(monkeypatch)
    assert main(argv) == 0
    assert benchmarked == ["mlp-d2", "mlp-d8"]
    assert "sphere: reusing its finished run" in capsys.readouterr().out
    document = json.loads((out / "benchmark.json").read_text())
    assert document["models"][0] == whole["models"][0] and document["settings"]["reused"] == ["sphere"]
    assert "Reused from an earlier run" in (out / "benchmark.md").read_text()
    assert main(argv) == 0 and benchmarked[2:] == []  # all three finished: nothing to do
    assert main([*argv[:4], "3", *argv[5:]]) == 0  # other settings (3 pairs): everything again
    assert benchmarked[2:] == ["sphere", "mlp-d2", "mlp-d8"]


@pytest.fixture(scope="module")
def tiny_vae():
    """A small VAE trained for a few epochs on the synthetic 4-class 'ring' set (seconds)."""
    from vaemanifold import data
    from vaemanifold.vae import TrainConfig, VAEConfig, train

    X, y = data.load("ring", "train", per_class=40, seed=0)
    config = VAEConfig(data_dim=X.shape[1], latent_dim=2, hidden=(16,), output="identity", num_centers=8)
    model, _ = train(X, y, config, TrainConfig(epochs=3, variance_iterations=5, seed=0), device="cpu", progress=False)
    model.metadata = {"dataset": "ring", "classes": None, "schedule": {"seed": 0}}
    return model


def test_the_demo_s_quick_benchmark_writes_its_files_and_table(tiny_vae, tmp_path):
    from argparse import Namespace

    from vaemanifold.commands.demo import quick_benchmark

    table = quick_benchmark(tiny_vae, Namespace(pairs=2, seed=0), tmp_path)
    document = json.loads((tmp_path / "benchmark.json").read_text())
    assert [m["pairs"] for m in document["models"]] == [2]
    assert "| gauss_newton | defaults |" in table and table in (tmp_path / "benchmark.md").read_text()
    assert (tmp_path / "time_to_quality.png").stat().st_size > 0


def test_model_problem_pairs_are_posterior_means_of_held_out_images(tiny_vae):
    from vaemanifold import data

    problem = pb.model_problem(tiny_vae, "ring-tiny", 5, seed=3)
    X, y = data.load("ring", "test", seed=0)
    first, second = torch.tensor(problem.info["first"]), torch.tensor(problem.info["second"])
    with torch.no_grad():
        torch.testing.assert_close(problem.z0, tiny_vae.encode(X[first])[0])
        torch.testing.assert_close(problem.z1, tiny_vae.encode(X[second])[0])
    assert problem.info["same_class"] == [True, True, True, False, False]
    assert problem.info["first_label"] == y[first].tolist()
    assert problem.manifold.latents is not None  # the graph solver's points: the training codes
    again = pb.model_problem(tiny_vae, "ring-tiny", 5, seed=3)
    assert torch.equal(again.z0, problem.z0)
    metadata, tiny_vae.metadata = tiny_vae.metadata, {}
    try:
        with pytest.raises(ValueError, match="training data set"):
            pb.model_problem(tiny_vae, "ring-tiny", 5)
    finally:
        tiny_vae.metadata = metadata


def test_cli_benchmarks_a_saved_model(tiny_vae, tmp_path):
    tiny_vae.save(tmp_path / "tiny")
    out = tmp_path / "bench"
    argv = ["benchmark", "--model", str(tmp_path / "tiny"), "--quick", "--pairs", "2", "--methods", "linear,stochman",
            "--out", str(out)]
    assert main(argv) == 0
    document = json.loads((out / "benchmark.json").read_text())
    (model,) = document["models"]
    assert model["name"] == "tiny" and model["pairs"] == 2 and len(model["records"]) == 2 * 2
    assert model["pair_info"]["dataset"] == "ring"


def test_cli_reruns_a_model_whose_file_changed(tiny_vae, tmp_path, monkeypatch):
    tiny_vae.save(tmp_path / "tiny")
    argv = ["benchmark", "--model", str(tmp_path / "tiny"), "--quick", "--pairs", "2", "--methods", "linear",
            "--no-ladders", "--out", str(tmp_path / "bench")]
    benchmarked = counting_benchmarks(monkeypatch)
    assert main(argv) == 0 and main(argv) == 0
    assert benchmarked == ["tiny"]  # the second run reused it
    weight = next(tiny_vae.parameters())
    with torch.no_grad():
        weight.add_(0.01)
    try:
        tiny_vae.save(tmp_path / "tiny")
    finally:
        with torch.no_grad():
            weight.sub_(0.01)  # the fixture is shared with later tests
    assert main(argv) == 0
    assert benchmarked == ["tiny", "tiny"]


def test_a_solver_that_raises_is_recorded_as_failed_not_fatal():
    M = analytic.sphere_manifold()  # no latents and no graph points: the graph solver raises
    z0, z1 = analytic.sphere_pairs(2)
    problem = pb.Problem("bare", M, z0, z1, "sphere without graph points")
    result = bm.run_benchmark(problem, {"linear": {}, "graph": {}}, ladders={}, reference=())
    graph = result.runs[1]
    assert not graph.converged.any() and torch.isnan(graph.length).all()
    assert graph.reasons[0].startswith("raised ValueError") and "points" in graph.reasons[0]
    row = result.summary()[1]
    assert row["failures"] == 2 and row["frac_within_1pct"] == 0 and row["median_length_ratio"] is None
    document = json.loads(json.dumps(report.to_json([result], {}), allow_nan=False))  # NaNs become nulls
    (step,) = document["models"][0]["time_to_quality"]["graph"]
    assert step["median_length_ratio"] is None and step["failure_example"].startswith("raised ValueError")
    with pytest.raises(TypeError):  # a bad budget is the caller's error, raised before any run
        bm.run_benchmark(problem, {"graph": {"nope": 1}}, ladders={}, reference=())


def test_an_extra_row_of_a_laddered_solver_is_its_own_curve_not_the_ladders_step():
    M = analytic.sphere_manifold(latents=analytic.sphere_grid(20, 30))
    z0, z1 = analytic.sphere_pairs(2)
    problem = pb.Problem("sphere", M, z0, z1, "sphere with chart points")
    result = bm.run_benchmark(
        problem, {"gauss_newton": {}}, ladders={"gauss_newton": ("tol", (1,))}, reference=(),
        extra_rows=[bm.LINE_START_ROW],
    )
    (step,) = result.ladders["gauss_newton"]
    assert step is result.runs[0] and step.label == "gauss_newton" and step.budget == {}
    curves = result.time_to_quality()
    assert list(curves) == ["gauss_newton", "gauss_newton from the line"]
    assert curves["gauss_newton from the line"][0]["budget"] == {"graph_start": False}


def test_cli_amortize_fits_saves_beside_the_model_and_measures(tiny_vae, tmp_path, capsys):
    from vaemanifold.amortized import NETWORK_FILE

    tiny_vae.save(tmp_path / "tiny")
    argv = ["amortize", "--model", str(tmp_path / "tiny"), "--seconds", "30", "--distill", "64", "--pairs", "4", "--heads", "2"]
    assert main(argv) == 0
    network = vm.GeodesicNetwork.load(tmp_path / "tiny" / NETWORK_FILE)
    assert network.heads == 2
    network.check_manifold(tiny_vae.manifold())  # the fingerprint matches the model it was fitted to
    result = json.loads((tmp_path / "tiny" / NETWORK_FILE).with_suffix(".json").read_text())
    assert [row["solver"] for row in result["rows"]] == ["amortized", "amortized + refine", "gauss_newton (cold)"]
    assert all(row["p90_length_ratio"] >= 1 and row["floors_per_pair"] > 0 for row in result["rows"])
    assert "| amortized + refine |" in capsys.readouterr().out
    bench = ["benchmark", "--model", str(tmp_path / "tiny"), "--amortized", "--methods", "gauss_newton", "--pairs", "3",
             "--no-ladders", "--no-reference", "--threads", "1"]
    assert main([*bench, "--out", str(tmp_path / "bench")]) == 0
    model = json.loads((tmp_path / "bench" / "benchmark.json").read_text())["models"][0]
    rows = {row["solver"]: row for row in model["summary"]}
    assert list(model["time_to_quality"]) == ["gauss_newton", "gauss_newton from the line", "amortized", "amortized + refine"]
    assert list(rows) == ["gauss_newton", "gauss_newton from the line", "amortized", "amortized + refine"]
    assert rows["gauss_newton"]["options"]["graph_start"] is True
    assert rows["gauss_newton from the line"]["options"]["graph_start"] is False
    assert rows["amortized"]["setup_seconds"] >= result["fit_seconds"]  # the fit is shown as setup
    assert rows["amortized + refine"]["median_length_ratio"] < rows["amortized"]["median_length_ratio"]
    assert rows["amortized"]["options"]["refine"] is None and rows["amortized + refine"]["options"]["refine"] is True


def test_cli_benchmark_amortized_refuses_a_model_without_a_network_and_analytic_problems(tiny_vae, tmp_path, capsys):
    tiny_vae.save(tmp_path / "tiny")
    base = ["benchmark", "--amortized", "--methods", "gauss_newton", "--no-ladders", "--no-reference"]
    assert main([*base, "--model", str(tmp_path / "tiny"), "--out", str(tmp_path / "a")]) == 2
    assert "no geodesic network at" in capsys.readouterr().err
    assert main([*base, "--analytic", "--out", str(tmp_path / "b")]) == 2
    assert "--amortized needs trained models" in capsys.readouterr().err
