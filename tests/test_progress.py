"""Progress output: a bar on a terminal, sparse whole lines elsewhere (logs, CI, pipes)."""

import io

import torch

import vaemanifold as vm
from vaemanifold import analytic
from vaemanifold.progress import progress
from vaemanifold.vae import TrainConfig, VAEConfig, train


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_not_a_terminal_gets_sparse_lines_without_carriage_returns():
    log = io.StringIO()
    bar = progress(range(5000), "work", stream=log)
    for _ in bar:
        bar.set_postfix(loss=1.0)
    bar.close()
    text = log.getvalue()
    assert "\r" not in text
    assert 1 <= len(text.splitlines()) <= 3 and "5000/5000" in text


def test_a_terminal_gets_tqdms_redrawn_bar_and_disabled_is_silent():
    screen = Terminal()
    for _ in progress(range(3), "work", stream=screen):
        pass
    assert "\r" in screen.getvalue()
    quiet = io.StringIO()
    bar = progress(range(3), "work", enabled=False, stream=quiet)
    for _ in bar:
        bar.set_postfix(loss=1.0)
    assert quiet.getvalue() == ""


def test_training_and_distance_matrix_write_no_carriage_returns_into_a_log(capsys):
    g = torch.Generator().manual_seed(0)
    X = torch.rand(64, 6, generator=g)
    config = VAEConfig(data_dim=6, latent_dim=2, hidden=(8,), num_centers=4)
    train(X, config=config, schedule=TrainConfig(epochs=3, variance_iterations=3, seed=0), device="cpu", progress=True)
    vm.distance_matrix(analytic.sphere_manifold(), analytic.sphere_pairs(3)[0], progress=True)
    err = capsys.readouterr().err
    assert "\r" not in err and "phase 1" in err and "distances" in err
