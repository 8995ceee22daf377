"""First use of the commands: output folders and data sets are checked before any work; reports name sources, not paths."""

import pytest

from vaemanifold import data
from vaemanifold.cli import main
from vaemanifold.vae import presets


def no_work(*args, **kwargs):
    raise AssertionError("the command started work before checking its inputs")


@pytest.mark.parametrize(
    "command",
    [
        ["train", "--epochs", "1"],
        ["benchmark", "--analytic"],
        ["interpolate", "--quick"],
        ["cluster", "--quick"],
        ["demo"],
        ["distances", "--analytic", "sphere"],
    ],
)
def test_an_output_folder_under_a_file_is_refused_before_any_work(command, tmp_path, monkeypatch, capsys):
    (tmp_path / "file").write_text("x")
    for target in (data, presets):
        monkeypatch.setattr(target, "load", no_work, raising=False)
    monkeypatch.setattr(presets, "pretrained", no_work)
    assert main([*command, "--out", str(tmp_path / "file" / "run")]) == 2
    assert f"lies under {tmp_path / 'file'}, which is a file" in capsys.readouterr().err


def test_benchmark_checks_every_presets_data_before_training_any(tmp_path, monkeypatch, capsys):
    real = data.source

    def without_fashion(name, split="train", root=None):
        if name == "fashion-mnist":
            raise FileNotFoundError(f"{name} ({split} split) not found; looked in: nowhere")
        return real(name, split, root)

    monkeypatch.setattr(data, "source", without_fashion)
    monkeypatch.setattr(presets, "pretrained", no_work)
    monkeypatch.setattr("vaemanifold.vae.pretrained", no_work)
    assert main(["benchmark", "--quick", "--out", str(tmp_path / "run")]) == 2
    assert "preset 'fashion-2d' needs fashion-mnist (train split) not found" in capsys.readouterr().err


def test_data_sources_are_named_without_paths_of_this_machine():
    for name in ("mnist", "moons"):
        assert "/" not in data.source(name, "train")
