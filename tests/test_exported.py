"""A trial's model exported in its own process (raysweep.exported) and logged by the driver
without exporting again: the same program, the same predictions; other exports untouched."""

from __future__ import annotations

import filecmp
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.export import Dim

from raysweep.artifacts import rebuild_model
from raysweep.exported import (
    PROGRAM_FILE,
    example_input,
    fetch_program,
    premade_program,
    save_program,
)
from raysweep.models import create_model
from raysweep.trainables import _reporter

META = {
    "model": "lenet",
    "model_kwargs": {},
    "in_channels": 1,
    "num_classes": 10,
    "image_size": 28,
}


def lenet_state(last_epoch: bool = True, epoch: int = 2) -> dict[str, Any]:
    torch.manual_seed(epoch)
    model = create_model("lenet", in_channels=1, num_classes=10, image_size=28)
    return {
        "epoch": epoch,
        "model": model.state_dict(),
        "meta": META,
        "last": {"is_last_epoch": int(last_epoch)},
    }


def test_the_driver_logs_the_trials_program_without_exporting_it_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow.pytorch

    state = lenet_state()
    program = tmp_path / PROGRAM_FILE
    assert save_program(state, program)

    def no_export(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the model was exported again")

    monkeypatch.setattr(torch.export, "export", no_export)
    example = example_input(META)
    with premade_program(program, example.shape):
        mlflow.pytorch.save_model(
            rebuild_model(state), tmp_path / "model", input_example=example, pip_requirements=[]
        )
    assert torch.export.export is no_export  # put back
    assert filecmp.cmp(program, tmp_path / "model" / "data" / "model.pt2", shallow=False)
    loaded = mlflow.pytorch.load_model(str(tmp_path / "model"))
    x = torch.randn(5, 1, 28, 28)  # another batch size: the batch dimension stayed dynamic
    assert torch.allclose(loaded(x), rebuild_model(state)(x), atol=1e-6)


def test_any_other_export_runs_as_usual(tmp_path: Path) -> None:
    program = tmp_path / PROGRAM_FILE
    assert save_program(lenet_state(), program)
    model = rebuild_model(lenet_state(epoch=3))
    with premade_program(program, (2, 1, 28, 28)):
        other_shape = torch.export.export(
            model, (torch.zeros(4, 1, 28, 28),), dynamic_shapes=[{0: Dim.AUTO}]
        )
        static = torch.export.export(model, (torch.zeros(2, 1, 28, 28),))
        torch.export.save(static, tmp_path / "static.pt2")
    x = torch.randn(4, 1, 28, 28)
    assert torch.allclose(other_shape.module()(x), model(x), atol=1e-6)
    reloaded = torch.export.load(tmp_path / "static.pt2").module()
    assert torch.allclose(reloaded(x[:2]), model(x[:2]), atol=1e-6)


def test_a_model_that_cannot_be_exported_leaves_no_program(tmp_path: Path) -> None:
    state = lenet_state()
    state["meta"] = {**META, "model": "no-such-model"}
    assert not save_program(state, tmp_path / PROGRAM_FILE)
    assert not (tmp_path / PROGRAM_FILE).exists()
    assert fetch_program(str(tmp_path), tmp_path / "x") is None


def test_only_the_last_checkpoint_carries_the_program(tmp_path: Path) -> None:
    from ray import tune

    kept: list[Path] = []

    def report(metrics: dict, checkpoint: Any = None) -> None:
        copy = tmp_path / f"checkpoint_{len(kept)}"
        copy.mkdir()
        for f in Path(checkpoint.path).iterdir():
            (copy / f.name).write_bytes(f.read_bytes())
        kept.append(copy)

    _reporter(report, tune.Checkpoint, "t000", export=True)({}, lenet_state(False, 1))
    _reporter(report, tune.Checkpoint, "t000", export=True)({}, lenet_state(True, 2))
    _reporter(report, tune.Checkpoint, "t001", export=False)({}, lenet_state(True, 2))
    assert [(k / PROGRAM_FILE).exists() for k in kept] == [False, True, False]
    fetched = fetch_program(str(kept[1]), tmp_path)
    assert fetched is not None and filecmp.cmp(fetched, kept[1] / PROGRAM_FILE, shallow=False)
