"""Tests for the model zoo, generated over the registry (timm-style): every model is checked."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from raysweep.errors import UnknownModelError
from raysweep.models import (
    catalog,
    check_model_kwargs,
    count_params,
    create_model,
    describe_models,
    list_models,
    model_kwargs,
    register_model,
    registry,
    signatures,
)

MODELS = list_models()
INPUTS = [(1, 28), (3, 32)]  # (in_channels, image_size)
NUM_CLASSES = 7


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.mark.parametrize(("in_channels", "image_size"), INPUTS, ids=["1x28x28", "3x32x32"])
@pytest.mark.parametrize("name", MODELS)
def test_forward_backward(name: str, in_channels: int, image_size: int) -> None:
    model = create_model(
        name, in_channels=in_channels, num_classes=NUM_CLASSES, image_size=image_size
    )
    x = torch.randn(2, in_channels, image_size, image_size)
    out = model(x)
    assert out.shape == (2, NUM_CLASSES)
    assert not torch.isnan(out).any()
    out.sum().backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert not no_grad, f"parameters unused in forward (breaks DDP): {no_grad}"


@pytest.mark.parametrize("name", MODELS)
def test_grey_32_and_channels_last(name: str) -> None:
    """Digits come as 1x32x32; channels_last inputs must give the same logits."""
    model = create_model(name, in_channels=1, num_classes=NUM_CLASSES, image_size=32).eval()
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        expected = model(x)
        got = model.to(memory_format=torch.channels_last)(
            x.contiguous(memory_format=torch.channels_last)
        )
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", MODELS)
def test_torch_export(name: str) -> None:
    model = create_model(name, num_classes=NUM_CLASSES).eval()
    x = torch.randn(2, 3, 32, 32)
    exported = torch.export.export(model, (x,))
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x), model(x))


PARAM_COUNTS = [
    ("basic_cnn", {}, 1_147_466),
    ("nn", {}, 285_162),
    ("nn", {"batchnorm": True}, 285_770),
    ("nn", {"hidden_channels": (4, 8), "hidden_neurons": (32, 32)}, 18_210),
    ("nn", {"hidden_channels": [64, 128], "hidden_neurons": [512, 512]}, 4_538_250),
    ("lenet", {}, 62_006),
    ("resnet18", {}, 11_173_962),
    ("improved_cnn", {}, 12_906_250),  # seed 003's reported count, reproduced
    ("residual_cnn", {}, 2_816_074),  # seed 003's reported count, reproduced
]


@pytest.mark.parametrize(("name", "kwargs", "expected"), PARAM_COUNTS)
def test_param_counts(name: str, kwargs: dict[str, object], expected: int) -> None:
    model = create_model(name, in_channels=3, num_classes=10, image_size=32, **kwargs)
    assert count_params(model) == expected


def test_lenet_flatten_at_28() -> None:
    model = create_model("lenet", in_channels=1, image_size=28)
    assert model.fc1.in_features == 16 * 4 * 4


def test_nn_activations_and_dropout() -> None:
    for activation in ("relu", "tanh", "softplus", "gelu"):
        model = create_model("nn", activation=activation, dropout=0.25)
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_duplicate_registration_raises() -> None:
    def lenet(*, in_channels: int, num_classes: int, image_size: int) -> None:
        """seed 999: a clash."""

    with pytest.raises(ValueError, match="already registered"):
        register_model(lenet)


def _no_standard(*, num_classes: int) -> None:
    """seed 999."""


def _positional(in_channels: int, *, num_classes: int, image_size: int) -> None:
    """seed 999."""


def _variadic(*, in_channels: int, num_classes: int, image_size: int, **kw: int) -> None:
    """seed 999."""


def _standard_default(*, in_channels: int = 3, num_classes: int, image_size: int) -> None:
    """seed 999."""


def _own_without_default(*, in_channels: int, num_classes: int, image_size: int, w: int) -> None:
    """seed 999."""


def _undocumented(*, in_channels: int, num_classes: int, image_size: int) -> None:
    pass


@pytest.mark.parametrize(
    ("factory", "match"),
    [
        (_no_standard, "lacks the standard kwargs"),
        (_positional, "'in_channels' must be keyword-only"),
        (_variadic, "no \\*args/\\*\\*kwargs"),
        (_standard_default, "'in_channels' takes no default"),
        (_own_without_default, "'w' needs a default"),
        (_undocumented, "needs a docstring"),
    ],
)
def test_registration_rules(factory: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        register_model(factory)  # type: ignore[arg-type]
    assert factory.__name__ not in list_models()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("source", "match"),
    [
        ("def m(*, in_channels, num_classes, image_size, w=len('ab')): ...", "not a literal"),
        ("def m(in_channels, num_classes, image_size): ...", "must be keyword-only"),
        ("def m(*, in_channels, num_classes, image_size, w): ...", "'w' needs a default"),
    ],
)
def test_catalog_read_applies_the_same_rules(source: str, match: str) -> None:
    """The ast read of a family module and the live signature go through one set of rules."""
    node = ast.parse(source).body[0]
    assert isinstance(node, ast.FunctionDef)
    with pytest.raises(ValueError, match=match):
        signatures.own_kwargs(node.name, signatures._params_from_ast(node))


def test_family_factory_must_match_the_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    """A family-module factory the ast read misses, or reads differently, does not register."""
    monkeypatch.setattr(registry, "_REGISTRY", {})

    def lenet(*, in_channels: int, num_classes: int, image_size: int, dropout: float = 0.3) -> None:
        """seed 999: a lenet whose default differs from the source's."""

    def hidden(*, in_channels: int, num_classes: int, image_size: int) -> None:
        """seed 999: registered by a call, where the ast read cannot see it."""

    for factory in (lenet, hidden):
        factory.__module__ = "raysweep.models.lenet"
    with pytest.raises(ValueError, match="differs from the catalog"):
        register_model(lenet)
    with pytest.raises(ValueError, match="not in the catalog"):
        register_model(hidden)
    assert registry._REGISTRY == {}


def test_unknown_model() -> None:
    with pytest.raises(UnknownModelError) as info:
        create_model("alexnett")
    message = str(info.value)
    assert "unknown model 'alexnett'" in message
    assert "did you mean 'alexnet'" in message
    assert "available: alexnet, basic_cnn" in message
    with pytest.raises(UnknownModelError, match="unknown model 'vgg16'"):
        model_kwargs("vgg16")


def test_unknown_kwarg() -> None:
    with pytest.raises(UnknownModelError) as info:
        create_model("lenet", dropuot=0.5)
    message = str(info.value)
    assert "model 'lenet' takes no argument 'dropuot'" in message
    assert "did you mean 'dropout'" in message
    assert "it takes: dropout" in message
    with pytest.raises(UnknownModelError, match="takes no argument 'dropout'"):
        create_model("basic_cnn", dropout=0.5)


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("nn", {"activation": "swish"}, "unknown activation 'swish'"),
        ("nn", {"hidden_channels": 16}, "hidden_channels must be a list of integers"),
        ("nn", {"hidden_neurons": [128, 0]}, "positive integers"),
        ("nn", {"batchnorm": "yes"}, "batchnorm must be a boolean"),
        ("lenet", {"dropout": "0.5"}, "dropout must be a number"),
        ("alexnet", {"dropout": 1.5}, "dropout"),
        ("lenet", {"image_size": 8}, "too small"),
        ("vgg", {"in_channels": 0}, "in_channels must be a positive integer"),
        ("vgg", {"image_size": 4}, "image_size 4 is too small for 3 max-pools"),
        ("nn", {"dropout": 1.5}, "dropout must be in"),
    ],
)
def test_bad_values(name: str, kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(UnknownModelError, match=match):
        create_model(name, **kwargs)


def test_check_model_kwargs_is_torch_free_validation() -> None:
    check_model_kwargs("nn", {"hidden_channels": [8, 16], "dropout": 0, "image_size": 28})
    with pytest.raises(UnknownModelError, match="takes no argument"):
        check_model_kwargs("nn", {"hidden": [8]})


def test_catalog_lists_every_registered_model() -> None:
    assert list(catalog()) == MODELS


@pytest.mark.parametrize("name", MODELS)
def test_catalog_is_the_live_signature(name: str) -> None:
    """The torch-free catalog equals each factory's live signature, read here independently."""
    params = inspect.signature(registry._REGISTRY[name].factory).parameters
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params.values())
    standard = {k: p.default for k, p in params.items() if k in registry.STANDARD_KWARGS}
    assert standard == dict.fromkeys(registry.STANDARD_KWARGS, inspect.Parameter.empty)
    own = {k: p.default for k, p in params.items() if k not in registry.STANDARD_KWARGS}
    assert catalog()[name] == own
    assert model_kwargs(name) == own


@pytest.mark.parametrize("name", MODELS)
def test_one_description_serves_both_checks(name: str) -> None:
    """create_model checks against the very dict the torch-free validation reads."""
    assert registry._REGISTRY[name].kwargs is signatures.read_catalog()[name]
    assert registry._description(name) is signatures.read_catalog()[name]


FAMILY_CLASSES = sorted(
    {
        (obj.__module__.rsplit(".", 1)[1], obj.__name__): obj
        for module in registry.FAMILY_MODULES
        for obj in vars(importlib.import_module(f"raysweep.models.{module}")).values()
        if isinstance(obj, type)
        and issubclass(obj, torch.nn.Module)
        and obj.__module__.startswith("raysweep.models.")
    }.items()
)


@pytest.mark.parametrize(
    "cls", [c for _, c in FAMILY_CLASSES], ids=[".".join(k) for k, _ in FAMILY_CLASSES]
)
def test_builders_take_keyword_only_arguments(cls: type[torch.nn.Module]) -> None:
    """Every model class's ``__init__`` takes its arguments by name (no positional flags)."""
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    assert params, cls
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params), cls


def test_catalog_is_a_copy() -> None:
    catalog()["nn"]["dropout"] = 0.9
    assert catalog()["nn"]["dropout"] == 0.0


def test_catalog_does_not_import_torch() -> None:
    code = (
        "import sys, raysweep.models.registry as r\n"
        "assert r.catalog()['lenet'] == {'dropout': 0.0}\n"
        "r.check_model_kwargs('nn', {'dropout': 0.1})\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_describe_models() -> None:
    rows = describe_models()
    assert [row["name"] for row in rows] == MODELS
    for row in rows:
        assert set(row) == {"name", "params", "kwargs", "source"}
        assert isinstance(row["params"], int) and row["params"] > 0
        assert str(row["source"]).startswith("seed 00")
        assert row["kwargs"] == catalog()[row["name"]]
    by_name = {row["name"]: row["params"] for row in rows}
    assert by_name["basic_cnn"] == 1_147_466


def test_zoo_table_in_docs_is_the_registry() -> None:
    """docs/models.md's zoo table: every model, its own kwargs and both parameter counts."""
    doc = (Path(__file__).parents[1] / "docs" / "models.md").read_text(encoding="utf-8")
    table = re.findall(r"^\| `(\w+)` \| [^|]+ \| ([^|]+) \| ([\d,]+) \| ([\d,]+) \|$", doc, re.M)
    at_32 = {r["name"]: r for r in describe_models(in_channels=3, image_size=32)}
    at_28 = {r["name"]: r for r in describe_models(in_channels=1, image_size=28)}
    assert [row[0] for row in table] == MODELS
    for name, kwargs, params_32, params_28 in table:
        own = ", ".join(f"`{k}={v!r}`" for k, v in catalog()[name].items()) or "—"
        assert kwargs.strip() == own, name
        assert (params_32, params_28) == (
            f"{at_32[name]['params']:,}",
            f"{at_28[name]['params']:,}",
        )


def test_register_outside_the_family_modules() -> None:
    """A model registered from user code is buildable (the torch-free catalog omits it)."""

    def tiny_test_model(
        *, in_channels: int, num_classes: int, image_size: int, width: int = 4
    ) -> torch.nn.Module:
        """seed 999: a test-only model."""
        return torch.nn.Sequential(
            torch.nn.Conv2d(in_channels, width, 3),
            torch.nn.AdaptiveAvgPool2d(1),
            torch.nn.Flatten(),
            torch.nn.Linear(width, num_classes),
        )

    register_model(tiny_test_model)
    try:
        model = create_model("tiny_test_model", num_classes=3, width=2)
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 3)
        with pytest.raises(UnknownModelError, match="takes no argument 'depth'"):
            create_model("tiny_test_model", depth=2)
        assert "tiny_test_model" not in catalog()
        assert model_kwargs("tiny_test_model") == {"width": 4}
        with pytest.raises(UnknownModelError, match="width must be an integer"):
            check_model_kwargs("tiny_test_model", {"width": 2.5})
    finally:
        del registry._REGISTRY["tiny_test_model"]
