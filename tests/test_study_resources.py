"""Studies with their own `resources`, and `--study` (no Ray session, no torch): the schema and
its merge with the top-level section, the trials that carry their study's request, the plan's
per-study view, the concurrency of a mixed sweep, the Tune payload's per-trial request, and
which earlier parent run `--resume --study` continues."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from raysweep.config import SweepSpec, load_spec, validate_spec
from raysweep.errors import ConfigError, UserError
from raysweep.outcome_report import rerun_command
from raysweep.plan import Trial, expand, select_studies, study_requests
from raysweep.planview import plan_report
from raysweep.resources import (
    TrialResources,
    describe_requests,
    request_params,
    sweep_concurrency,
)
from raysweep.sections import RequestSpec
from raysweep.sweep import plan_resources, run_settings
from raysweep.trainables import trial_resources, tune_request
from tests.fakes import NAME, Store, open_store

# Seed 001's shape on digits: LeNet data-parallel on 4 workers (the top-level resources) next
# to a ResNet study on 1 worker, and a study that only changes the CPUs of the top level.
SWEEP: dict[str, Any] = {
    "name": "mixed",
    "dataset": {"name": "synthetic"},
    "model": {"name": "lenet"},
    "train": {"epochs": 2},
    "sweep": {
        "studies": [
            {"name": "lenet", "axes": {"train.optimizer.lr": [1.0e-3, 1.0e-2]}},
            {
                "name": "resnet",
                "set": {"model.name": "resnet18"},
                "resources": {"workers_per_trial": 1},
            },
            {"name": "wide", "set": {"train.batch_size": 64}, "resources": {"cpus_per_worker": 2}},
        ]
    },
    "resources": {"workers_per_trial": 4, "cpus_per_worker": 1, "gpus_per_worker": 1},
}
CLUSTER = {"CPU": 16.0, "GPU": 4.0, "trial_driver": 10000.0}


def spec(**changes: Any) -> SweepSpec:
    return validate_spec({**SWEEP, **changes}, "s.yaml")


def with_studies(*studies: dict[str, Any], **top: Any) -> SweepSpec:
    sweep = {**SWEEP["sweep"], "studies": list(studies)}
    return spec(sweep=sweep, **({"resources": top} if top else {}))


# ---- schema: a study's resources replace the top-level ones key by key ------------------------


def test_a_study_inherits_every_key_it_does_not_set() -> None:
    s = spec()
    lenet, resnet, wide = s.sweep.studies
    assert s.study_resources(lenet) == RequestSpec(
        workers_per_trial=4, cpus_per_worker=1, gpus_per_worker=1
    )
    assert s.study_resources(resnet) == RequestSpec(
        workers_per_trial=1, cpus_per_worker=1, gpus_per_worker=1
    )
    assert s.study_resources(wide) == RequestSpec(
        workers_per_trial=4, cpus_per_worker=2, gpus_per_worker=1
    )
    assert (s.study_resources(lenet).inline, s.study_resources(resnet).inline) == (False, True)


def test_an_explicit_null_is_a_value_not_a_missing_key() -> None:
    # gpus_per_worker: null means "auto" (1 where the cluster has GPUs), whatever the top says.
    s = with_studies({"name": "auto", "resources": {"gpus_per_worker": None}})
    assert s.study_resources(s.sweep.studies[0]).gpus_per_worker is None


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        (
            {"workers_per_trial": 0},
            "s.yaml: sweep.studies[1].resources.workers_per_trial: Input should be greater than "
            "or equal to 1",
        ),
        ({"worker": 2}, "s.yaml: sweep.studies[1].resources.worker: unknown key"),
        # The merged request is checked: 4 workers come from the top level.
        (
            {"executor": "inline"},
            "s.yaml: sweep.studies[1].resources: executor: inline trains in one process; "
            "workers_per_trial above 1 needs executor: torch_trainer (or auto)",
        ),
        (
            {"max_concurrent": 2},
            "s.yaml: sweep.studies[1].resources.max_concurrent: how many trials run at once is "
            "the whole sweep's: set it in the top-level resources (or run --max-concurrent)",
        ),
    ],
)
def test_a_bad_study_resources_names_its_path(resources: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        with_studies({"name": "a"}, {"name": "b", "resources": resources}, workers_per_trial=4)
    assert str(caught.value) == message


def test_study_names_must_differ() -> None:
    with pytest.raises(ConfigError) as caught:
        with_studies({"name": "a"}, {"name": "a", "set": {"train.epochs": 1}})
    assert str(caught.value) == (
        "s.yaml: sweep: studies[1].name: 'a' already names studies[0] (`--study` and the "
        "reports tell studies apart by name)"
    )


# ---- plan: each trial carries its study's request ---------------------------------------------


def test_each_trial_carries_its_studys_resources() -> None:
    trials = expand(spec())
    by_study = {t.trial_id: (t.studies, t.resources.workers_per_trial) for t in trials}
    assert by_study == {
        "t000": (("lenet",), 4),
        "t001": (("lenet",), 4),
        "t002": (("resnet",), 1),
        "t003": (("wide",), 4),
    }
    assert trials[3].resources.cpus_per_worker == 2
    assert Trial.from_json(trials[2].to_json()) == trials[2]


def test_one_config_under_two_requests_is_two_trials() -> None:
    """Trained data-parallel on 4 workers or on 1 is not the same run: one trial per study.
    Studies with the same request still share the trial (the base of two ofat studies)."""
    s = with_studies(
        {"name": "dp", "axes": {"train.optimizer.lr": [1.0e-3]}},
        {
            "name": "single",
            "axes": {"train.optimizer.lr": [1.0e-3]},
            "resources": {"workers_per_trial": 1},
        },
        {"name": "dp_again", "axes": {"train.optimizer.lr": [1.0e-3]}},
    )
    trials = expand(s)
    assert [(t.trial_id, t.studies, t.resources.workers_per_trial) for t in trials] == [
        ("t000", ("dp", "dp_again"), 4),
        ("t001", ("single",), 1),
    ]
    assert trials[0].fingerprint == trials[1].fingerprint  # the same config


def test_select_studies_keeps_the_ids_of_the_whole_plan() -> None:
    s = spec()
    trials = expand(s)
    chosen, selected = select_studies(s, trials, ["wide"])
    assert [t.trial_id for t in chosen] == ["t003"] and selected == ("wide",)
    # Repeated or comma lists; the selection is in file order.
    chosen, selected = select_studies(s, trials, ["wide,resnet"])
    assert [t.trial_id for t in chosen] == ["t002", "t003"] and selected == ("resnet", "wide")
    assert select_studies(s, trials, ["resnet", "wide"])[1] == ("resnet", "wide")
    # Every study (or none named): the whole sweep, no selection to record.
    assert select_studies(s, trials, []) == (trials, ())
    assert select_studies(s, trials, ["lenet,resnet", "wide"]) == (trials, ())


def test_select_studies_keeps_a_shared_trial_with_all_its_studies() -> None:
    s = with_studies(
        {"name": "lr", "mode": "ofat", "axes": {"train.optimizer.lr": [1.0e-2]}},
        {"name": "bs", "mode": "ofat", "axes": {"train.batch_size": [32]}},
    )
    chosen, _ = select_studies(s, expand(s), ["bs"])
    assert [(t.trial_id, t.studies) for t in chosen] == [("t000", ("lr", "bs")), ("t002", ("bs",))]


def test_an_unknown_study_is_a_user_error_listing_the_studies() -> None:
    s = spec()
    with pytest.raises(UserError) as caught:
        select_studies(s, expand(s), ["resnet,renset"])
    assert str(caught.value) == (
        "--study renset: sweep 'mixed' has no such study (studies: lenet, resnet, wide)"
    )
    assert caught.value.exit_code == 2


def test_cli_plan_study(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    from raysweep.cli import main

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(SWEEP, sort_keys=False))
    with pytest.raises(SystemExit) as caught:
        main(["plan", str(path), "--study", "resnet", "--study", "wide", "--json"])
    assert caught.value.code == 0
    data = json.loads(capsys.readouterr().out)
    assert [t["trial_id"] for t in data["trials"]] == ["t002", "t003"]
    assert data["selected_studies"] == ["resnet", "wide"]
    assert [s["name"] for s in data["studies"]] == ["resnet", "wide"]
    with pytest.raises(SystemExit) as caught:
        main(["plan", str(path), "--study", "nope"])
    assert caught.value.code == 2
    assert capsys.readouterr().err == (
        "raysweep: error: --study nope: sweep 'mixed' has no such study "
        "(studies: lenet, resnet, wide)\n"
    )


# ---- plan view: each study's request and fit ---------------------------------------------------


@pytest.fixture
def four_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    from raysweep import planview

    monkeypatch.setattr(planview, "local_cluster", lambda: dict(CLUSTER))
    monkeypatch.setattr("raysweep.resources.node_shapes", lambda *a: [])


def test_plan_text_shows_each_studys_request_and_fit(four_gpus: None) -> None:
    s = spec()
    lines = plan_report(s, expand(s)).splitlines()
    assert lines[0] == "sweep 'mixed': 4 trials, 8 epochs in all"
    assert lines[2:7] == [
        "resources per study (on this machine):",
        "  lenet   2 trials  4 workers x (1 CPU, 1 GPU) (torch_trainer)  1 at a time",
        "  resnet  1 trial   1 worker x (1 CPU, 1 GPU) (inline)          4 at a time",
        "  wide    1 trial   4 workers x (2 CPU, 1 GPU) (torch_trainer)  1 at a time",
        "up to 4 trials at a time on this machine",
    ]
    assert "raysweep: warning" not in "\n".join(lines)


def test_plan_names_the_study_that_cannot_be_placed(four_gpus: None) -> None:
    s = spec(resources={"workers_per_trial": 8, "gpus_per_worker": 1})
    trials = expand(s)
    text = plan_report(s, trials)
    assert "  lenet   2 trials  8 workers x (1 CPU, 1 GPU) (torch_trainer)  never fits" in text
    warnings = [line for line in text.splitlines() if line.startswith("raysweep: warning")]
    assert warnings == [
        "raysweep: warning: cannot be placed on this machine: study 'lenet': a trial needs "
        "8 GPU (8 workers x (1 CPU, 1 GPU)) but the cluster has 4",
        "raysweep: warning: cannot be placed on this machine: study 'wide': a trial needs "
        "8 GPU (8 workers x (2 CPU, 1 GPU)) but the cluster has 4",
    ]
    data = json.loads(plan_report(s, trials, as_json=True))
    assert data["resources_per_trial"] is None and data["executor"] is None
    studies = {st["name"]: st for st in data["studies"]}
    assert studies["resnet"]["fits"] == 4 and studies["resnet"]["placement_problems"] == []
    assert studies["lenet"]["fits"] == 0
    assert studies["lenet"]["placement_problems"] == [
        "a trial needs 8 GPU (8 workers x (1 CPU, 1 GPU)) but the cluster has 4"
    ]
    assert all(p.startswith("study '") for p in data["placement_problems"])
    with pytest.raises(UserError, match="^study 'lenet': a trial needs 8 GPU"):
        plan_resources(s, CLUSTER, None)
    # Run only the study that fits: nothing to refuse.
    requests, parallel = plan_resources(s, CLUSTER, None, ("resnet",))
    assert list(requests) == ["resnet"] and parallel == 4


def test_plan_with_one_request_keeps_the_one_line(four_gpus: None) -> None:
    s = spec()
    chosen, selected = select_studies(s, expand(s), ["resnet"])
    lines = plan_report(s, chosen, studies=selected).splitlines()
    assert lines[0] == "sweep 'mixed': 1 trials, 2 epochs in all (--study resnet)"
    assert lines[2] == (
        "each trial: 1 worker x (1 CPU, 1 GPU) (inline); up to 4 at a time on this machine"
    )
    data = json.loads(plan_report(s, chosen, as_json=True, studies=selected))
    assert data["resources_per_trial"] == {"workers": 1, "CPU": 1.0, "GPU": 1.0}
    assert data["executor"] == "inline"


# ---- concurrency and the parent run's params ---------------------------------------------------


def test_a_mixed_sweep_runs_as_many_as_its_smallest_request_fits() -> None:
    requests, parallel = plan_resources(spec(), CLUSTER, None)
    assert {n: (r.workers, r.inline) for n, r in requests.items()} == {
        "lenet": (4, False),
        "resnet": (1, True),
        "wide": (4, False),
    }
    assert parallel == 4  # four 1-GPU ResNet trials; Ray places fewer of the 4-GPU ones
    assert plan_resources(spec(), CLUSTER, 2)[1] == 2  # --max-concurrent caps it
    one = TrialResources(4, 1.0, 1.0)
    assert sweep_concurrency([one], CLUSTER, None) == 1  # one request: what it fits


def test_request_params_say_per_study_when_they_differ() -> None:
    requests, _ = plan_resources(spec(), CLUSTER, None)
    assert request_params(requests) == {
        "resources": "lenet: 4 workers x (1 CPU, 1 GPU); resnet: 1 worker x (1 CPU, 1 GPU); "
        "wide: 4 workers x (2 CPU, 1 GPU)",
        "executor": "lenet: torch_trainer; resnet: inline; wide: torch_trainer",
    }
    same = {"a": TrialResources(1, 1.0, 0.0, True), "b": TrialResources(1, 1.0, 0.0, True)}
    assert request_params(same) == {"resources": "1 worker x (1 CPU)", "executor": "inline"}
    assert describe_requests(same) == "1 worker x (1 CPU) (inline)"


# ---- the Tune payload: each trial asks for its own request -------------------------------------


def test_each_trial_resolves_its_own_request_from_its_payload() -> None:
    trials = expand(spec())
    run = run_settings("/s", {**CLUSTER, "memory": 1e9, "node:10.0.0.1": 1.0})
    assert (run["storage"], run["cluster"]) == ("/s", CLUSTER)
    payloads = [{"trial": t.to_json(), "run": run} for t in trials]
    assert [trial_resources(p) for p in payloads] == [
        TrialResources(4, 1.0, 1.0, False),
        TrialResources(4, 1.0, 1.0, False),
        TrialResources(1, 1.0, 1.0, True),
        TrialResources(4, 2.0, 1.0, False),
    ]
    # Inline: the worker's CPU and GPU. A worker group's driver: no CPU, its share of the
    # driver slots: all of them where one such trial fits (4 GPUs), so that the 4 one-GPU
    # ResNet trials can run side by side without 4 TorchTrainers starting at once.
    assert [tune_request(p) for p in payloads] == [
        {"CPU": 0, "trial_driver": 10000},
        {"CPU": 0, "trial_driver": 10000},
        {"CPU": 1.0, "GPU": 1.0},
        {"CPU": 0, "trial_driver": 10000},
    ]
    two_nodes = {"CPU": 32.0, "GPU": 8.0, "trial_driver": 10000.0}
    assert tune_request({**payloads[0], "run": run_settings("/s", two_nodes)}) == {
        "CPU": 0,
        "trial_driver": 5000,
    }


# ---- --resume --study: the parent run of the same selection ------------------------------------


@pytest.fixture
def store(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Store]:
    with open_store(tmp_path, tmp_path_factory, monkeypatch) as s:
        yield s


def test_resume_continues_the_newest_parent_of_the_same_studies(store: Store) -> None:
    from raysweep.records import TAG_SELECTED_STUDIES
    from raysweep.resume import find_previous

    client, experiment = store.client, store.writer.experiment_id

    def parent(start_ms: int, directory: str, studies: str | None) -> str:
        tags = {"raysweep.role": "sweep", "raysweep.experiment_dir": directory}
        if studies is not None:
            tags[TAG_SELECTED_STUDIES] = studies
        return client.create_run(experiment, start_time=start_ms, tags=tags).info.run_id

    whole = parent(1_000, "all", None)
    lr = parent(2_000, "lr-only", "lr")
    parent(3_000, "bs-only", "bs")
    assert find_previous(store.writer, NAME, ("lr",)).parent_id == lr
    assert find_previous(store.writer, NAME).parent_id == whole
    with pytest.raises(UserError) as caught:
        find_previous(store.writer, NAME, ("lr", "bs"))
    assert str(caught.value) == (
        f"--resume: no earlier run of sweep '{NAME}' with --study lr,bs in {store.uri} (its "
        "newest run had --study bs); resume with that run's --study, or run without --resume"
    )


def test_the_resume_hint_repeats_the_study_selection() -> None:
    assert rerun_command("s.yaml", ["train.epochs=1"], ("resnet", "wide")) == (
        "raysweep run s.yaml --set train.epochs=1 --study resnet,wide"
    )
    assert rerun_command("s.yaml", []) == "raysweep run s.yaml"


def test_study_requests_of_a_file(tmp_path: Path) -> None:
    import yaml

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(SWEEP, sort_keys=False))
    loaded, _ = load_spec(path)
    assert list(study_requests(loaded)) == ["lenet", "resnet", "wide"]
    assert list(study_requests(loaded, ("wide",))) == ["wide"]
