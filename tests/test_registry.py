import pytest

from trustkit.errors import UnknownNameError
from trustkit.registry import Registry


def make() -> Registry[int]:
    registry: Registry[int] = Registry("widget")
    registry.add("alpha", 1, aliases=("a",), summary="first")
    registry.add("beta_two", 2)
    return registry


def test_lookup_is_case_and_underscore_insensitive():
    registry = make()
    assert registry.get("ALPHA") == 1
    assert registry.get("a") == 1
    assert registry.get("beta-two") == 2
    assert registry.canonical("Beta_Two") == "beta-two"


def test_unknown_name_lists_choices_and_suggests_nearest():
    with pytest.raises(UnknownNameError) as info:
        make().get("alpah")
    message = str(info.value)
    assert "unknown widget 'alpah'" in message
    assert "did you mean 'alpha'" in message
    assert "alpha, beta-two" in message


def test_no_suggestion_for_distant_name():
    with pytest.raises(UnknownNameError) as info:
        make().get("zzzzzz")
    assert "did you mean" not in str(info.value)


def test_duplicate_names_are_rejected():
    registry = make()
    with pytest.raises(ValueError):
        registry.add("a", 3)


def test_real_registries_have_their_entries():
    from trustkit.attacks import ATTACKS
    from trustkit.data import DATASETS
    from trustkit.models import MODELS

    assert {"softmax", "mlp", "cnn", "resnet"} <= set(MODELS)
    assert {"fgsm", "pgd"} <= set(ATTACKS)
    assert {"digits", "mnist", "cifar10"} <= set(DATASETS)
    assert MODELS.canonical("resnet18") == "resnet"
