"""Distance matrices in blocks: the pair numbering, Dask workers (equal to serial, a lost worker), resume."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import vaemanifold as vm
from vaemanifold import analytic
from vaemanifold.cli import main
from vaemanifold.distances import PairBlocks, block_results, grid_cost, reference_check
from vaemanifold.solvers import make_solver
from vaemanifold.solvers.amortized import LIGHT_REFINE

distributed = pytest.importorskip("distributed")


@pytest.mark.parametrize("points, size", [(2, 1), (7, 3), (30, 64), (31, 7)])
def test_blocks_number_every_pair_once_row_by_row(points, size):
    blocks = PairBlocks(points, size)
    rows, cols = zip(*(blocks.indices(k) for k in range(len(blocks))))
    expected = torch.triu_indices(points, points, offset=1).numpy()
    np.testing.assert_array_equal(np.concatenate(rows), expected[0])
    np.testing.assert_array_equal(np.concatenate(cols), expected[1])
    assert all(len(r) == size for r in rows[:-1]) and 1 <= len(rows[-1]) <= size


def test_blocks_of_a_huge_matrix_are_exact_without_listing_all_pairs():
    blocks = PairBlocks(100_000, 4096)
    last = len(blocks) - 1
    rows, cols = blocks.indices(last)
    assert (rows[-1], cols[-1]) == (99_998, 99_999)
    p = np.arange(last * 4096, blocks.pairs)
    np.testing.assert_array_equal(rows * 100_000 - rows * (rows + 1) // 2 + cols - rows - 1, p)
    with pytest.raises(IndexError, match="out of range"):
        blocks.indices(len(blocks))


def sphere_codes(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    # |phi0 - phi1| < 3 < pi: the great circle is the chart's geodesic (no wrap around phi = pi)
    return torch.stack([0.6 + 1.9 * torch.rand(n, generator=g), 3 * torch.rand(n, generator=g) - 1.5], -1).double()


def test_serial_matrix_is_the_great_circle_distance():
    Z = sphere_codes(12)
    D = vm.distance_matrix(analytic.sphere_manifold(), Z, batch_size=8, block_size=20)
    i, j = torch.triu_indices(12, 12, offset=1)
    torch.testing.assert_close(D[i, j], analytic.great_circle_distance(Z[i], Z[j]), rtol=2e-3, atol=0)
    torch.testing.assert_close(D, D.T, rtol=0, atol=0)
    assert bool((D.diagonal() == 0).all())


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as client:
        yield client


def test_two_dask_workers_give_the_serial_matrix(client):
    M, Z = analytic.random_mlp_manifold(2, dtype=torch.float64), 2 * sphere_codes(16)
    serial = vm.distance_matrix(M, Z, batch_size=8, block_size=16)
    spread = vm.distance_matrix(M, Z, batch_size=8, block_size=16, client=client)
    torch.testing.assert_close(spread, serial, rtol=1e-6, atol=0)


def test_a_worker_killed_mid_run_loses_nothing(client):
    M, Z = analytic.sphere_manifold(), sphere_codes(24)
    blocks, solver = PairBlocks(len(Z), 4), make_solver("gauss_newton")
    results = block_results(M, Z, blocks, range(len(blocks)), solver, 4, client=client)
    done = [next(results)]
    victim = next(iter(client.run(os.getpid).values()))
    os.kill(victim, signal.SIGKILL)  # its nanny starts a new worker; its tasks run again
    done += list(results)
    assert sorted(r.block for r in done) == list(range(len(blocks)))
    D = np.zeros((len(Z), len(Z)))
    for r in done:
        D[r.rows, r.cols] = D[r.cols, r.rows] = r.lengths
    serial = vm.distance_matrix(M, Z, batch_size=4, block_size=4)
    np.testing.assert_allclose(D, serial.numpy(), rtol=1e-6, atol=0)
    assert victim not in client.run(os.getpid).values()


def _done(folder):
    try:
        return int(np.load(folder / "blocks.npy").sum())
    except (OSError, ValueError):
        return 0


def test_cli_interrupted_and_killed_resumes_without_recomputing_saved_blocks(tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "vaemanifold.cli", "distances", "--analytic", "sphere", "--points", "50",
               "--batch-size", "1", "--block-size", "5", "--out", str(out)]
    saved_at_stop = []
    for stop in (signal.SIGINT, signal.SIGKILL):
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        floor = saved_at_stop[-1] if saved_at_stop else 0
        deadline = time.monotonic() + 120
        while _done(out) < floor + 3 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert process.poll() is None, "the run ended before it could be interrupted: " + process.stdout.read()
        process.send_signal(stop)
        output = process.communicate(timeout=60)[0]
        if stop == signal.SIGINT:
            assert process.returncode == 130 and "run the same command again to resume" in output
        saved_at_stop.append(_done(out))
    assert saved_at_stop[0] >= 3 and saved_at_stop[1] > saved_at_stop[0]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert f"{saved_at_stop[1]} saved" in finished.stdout
    run = json.loads((out / "run.json").read_text())
    blocks = PairBlocks(50, 5)
    assert run["blocks_saved_before"] == saved_at_stop[1]
    assert run["blocks_solved_this_run"] == len(blocks) - saved_at_stop[1]
    Z = torch.as_tensor(np.load(out / "codes.npy"))
    serial = vm.distance_matrix(analytic.sphere_manifold(), Z, batch_size=1, block_size=5)
    np.testing.assert_allclose(np.load(out / "distances.npy"), serial.numpy(), rtol=1e-6, atol=0)


def test_cli_refuses_a_folder_with_other_settings_or_under_a_file(tmp_path, capsys):
    out = tmp_path / "run"
    base = ["distances", "--analytic", "sphere", "--points", "6", "--out", str(out)]
    assert main(base) == 0
    assert main([*base[:-2], "--method", "spline", "--out", str(out)]) == 2
    assert "holds a run with other settings (method: 'gauss_newton' there, 'spline' now)" in capsys.readouterr().err
    assert main(base) == 0  # the same settings: nothing left to solve
    assert "15 pairs in 1 blocks of 1024; 1 saved, 0 to solve" in capsys.readouterr().out
    (tmp_path / "file").write_text("x")
    assert main([*base[:-1], str(tmp_path / "file" / "run")]) == 2
    assert f"lies under {tmp_path / 'file'}, which is a file" in capsys.readouterr().err


def test_cli_does_not_resume_a_folder_written_by_other_code(tmp_path, monkeypatch, capsys):
    from vaemanifold.commands import distances as command

    out = tmp_path / "run"
    base = ["distances", "--analytic", "sphere", "--points", "6", "--out", str(out)]
    assert main(base) == 0
    capsys.readouterr()
    monkeypatch.setattr(command, "package_sha256", lambda: "0" * 64)  # as if the package had changed since
    assert main(base) == 2
    assert "holds a run with other settings (package_code_sha256: " in capsys.readouterr().err


def test_a_coarser_measuring_grid_and_what_it_costs():
    M = analytic.sphere_manifold()
    Z = torch.cat(analytic.sphere_pairs(3, seed=8))
    coarse = vm.distance_matrix(M, Z, grid=16, on_failure="keep")
    i, j = torch.triu_indices(len(Z), len(Z), 1)
    expected = vm.connecting_geodesic(M, Z[i], Z[j], grid=16).length
    torch.testing.assert_close(coarse[i, j], expected, rtol=1e-6, atol=0)
    grid_only = vm.connecting_geodesic(M, Z[i], Z[j], grid=16, grid_change=False)  # what the matrix measures
    torch.testing.assert_close(grid_only.length, expected, rtol=1e-6, atol=0)
    assert grid_only.grid_change.isnan().all()
    assert not torch.allclose(coarse, vm.distance_matrix(M, Z, on_failure="keep"), rtol=1e-6, atol=0)  # the grid is used
    cost = grid_cost(M, Z, 16, sample=8)
    assert cost.shape == (8,) and (cost > 0).all() and (cost < 0.01).all()
    assert (grid_cost(M, Z, 512, sample=8) == 0).all()


def test_reference_check_compares_entries_with_geodesics_on_sampled_pairs():
    M = analytic.sphere_manifold()
    Z = sphere_codes(10, seed=3)
    exact = analytic.great_circle_distance(Z[:, None].expand(10, 10, 2), Z[None].expand(10, 10, 2))
    check = reference_check(M, Z, exact, sample=12)
    assert check["pairs"] == 12 and check["reference_converged"] == 12 and check["method"] == vm.DEFAULT_METHOD
    assert abs(check["ratio"]["median"] - 1) < 2e-3 and abs(check["ratio"]["max"] - 1) < 2e-3
    # one pair is sampled both ways: a tie in D, while its two geodesics differ by rounding (Spearman 0.998)
    assert check["spearman"] == pytest.approx(1.0, abs=5e-3)
    longer = reference_check(M, Z, 1.1 * exact, sample=12)
    assert longer["ratio"]["min"] == pytest.approx(1.1, rel=2e-3) and longer["spearman"] == pytest.approx(1.0, abs=5e-3)
    scrambled = exact[torch.randperm(10, generator=torch.Generator().manual_seed(0))][:, torch.arange(9, -1, -1)]
    assert reference_check(M, Z, scrambled, sample=12)["spearman"] < 0.9
    with pytest.raises(ValueError, match=r"D must be \(10, 10\)"):
        reference_check(M, Z, exact[:9], sample=4)


def test_cli_amortized_distances_with_a_network_file_on_a_coarse_grid(tmp_path, capsys):
    from fitted_networks import sphere_network

    network = sphere_network().save(tmp_path / "net.pt")
    base = ["distances", "--analytic", "sphere", "--points", "6", "--method", "amortized"]
    assert main([*base, "--out", str(tmp_path / "none")]) == 2
    assert "needs --network FILE" in capsys.readouterr().err
    assert main([*base, "--network", str(network), "--grid", "32", "--check-pairs", "5", "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "measuring on 32 points instead of 512" in out and "entries against gauss_newton geodesics on 5" in out
    Z = torch.as_tensor(np.load(tmp_path / "run" / "codes.npy"))
    expected = vm.distance_matrix(analytic.sphere_manifold(), Z, method="amortized", network=sphere_network(), grid=32,
                                  on_failure="keep")
    np.testing.assert_allclose(np.load(tmp_path / "run" / "distances.npy"), expected.numpy(), rtol=1e-6, atol=0)
    document = json.loads((tmp_path / "run" / "run.json").read_text())
    assert document["settings"]["grid"] == 32 and document["settings"]["network_sha256"]
    assert document["reference_check"]["pairs"] == 5 and 0.99 < document["reference_check"]["ratio"]["median"] < 1.05
    assert main([*base, "--network", str(network), "--grid", "32", "--refine", "light", "--out", str(tmp_path / "light")]) == 0
    light = vm.distance_matrix(analytic.sphere_manifold(), Z, method="amortized", network=sphere_network(), grid=32,
                               on_failure="keep", refine=True, refine_options=LIGHT_REFINE)
    np.testing.assert_allclose(np.load(tmp_path / "light" / "distances.npy"), light.numpy(), rtol=1e-6, atol=0)
    assert json.loads((tmp_path / "light" / "run.json").read_text())["settings"]["refine"] == "light"
