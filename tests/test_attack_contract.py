"""The attack contract over the whole registry: keyword-only options, declared norms, early_stop=False honoured,
typed and range-checked parameters (every -p value), and ensembles that refuse what no member takes."""
from __future__ import annotations

import inspect
import math

import pytest
import torch
import torch.nn.functional as F

from trustkit.attacks import ATTACKS, FGSM, NORMS, attack_class, make_attack, supported_norms
from trustkit.errors import InvalidArgumentError

# Small budgets so that every attack of the registry runs in about a second on an untrained network.
SMALL = {"steps": 5, "n_queries": 60, "binary_search_steps": 2, "max_iter": 2, "max_eval": 20, "init_eval": 5,
         "init_size": 20, "square.n_queries": 60}


def tiny_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(),
                               torch.nn.Linear(32, 10)).eval()


def batch(n: int = 12, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 8, 8, generator=generator)
    return x, tiny_model()(x).argmax(1).detach()  # labels = the model's own answers: every sample starts correct


def build(name: str, eps: float, norm: str, **extra) -> object:
    return make_attack(name, eps, norm, ignore_unknown=True, **{**SMALL, **extra})


@pytest.mark.parametrize("name", sorted(ATTACKS.names()))
def test_every_option_is_keyword_only_after_eps(name):
    cls = attack_class(name)
    parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
    assert parameters[0].name == "eps"
    positional = [p.name for p in parameters[1:] if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    assert positional == [], f"{name}: {positional} can be passed by position"


def test_fgsm_second_argument_is_not_the_targeted_flag():
    """FGSM(0.1, "l2") used to build a *targeted linf* attack; now any positional option is refused."""
    with pytest.raises(TypeError):
        FGSM(0.1, "l2")  # type: ignore[misc]
    assert FGSM(0.1, norm="l2").norm == "l2" and not FGSM(0.1, norm="l2").targeted


@pytest.mark.parametrize("name", sorted(ATTACKS.names()))
def test_every_attack_declares_its_norms_and_refuses_others(name):
    norms = supported_norms(name)
    assert norms and set(norms) <= set(NORMS)
    for norm in NORMS:
        if norm in norms:
            assert build(name, 0.1, norm).norm == norm
        else:
            with pytest.raises(InvalidArgumentError, match=f"--norm {norms[0]}"):
                build(name, 0.1, norm)
    with pytest.raises(InvalidArgumentError):
        build(name, 0.1, "l1")


def test_cw_under_linf_names_the_l2_norm():
    with pytest.raises(InvalidArgumentError, match="supports only the l2 norm.*use --norm l2"):
        make_attack("cw", 0.3, "linf")


def _mean_loss(model, x_adv, y) -> float:
    with torch.no_grad():
        return F.cross_entropy(model(x_adv), y).item()


@pytest.mark.parametrize("name", sorted(ATTACKS.names()))
def test_every_attack_honours_early_stop_false(name):
    """early_stop=False spends the budget and returns the strongest point: its loss on the attacked model is
    at least that of the first fooling point (strictly higher wherever the attack can move past it)."""
    model, (x, y) = tiny_model(), batch()
    norm = supported_norms(name)[0]
    eps = 0.5 if norm == "linf" else 3.0
    results, queries = {}, {}
    for early_stop in (True, False):
        torch.manual_seed(0)
        attack = build(name, eps, norm, early_stop=early_stop)
        assert attack.early_stop is early_stop
        results[early_stop] = attack(model, x, y)
        queries[early_stop] = getattr(attack, "last_queries", None)
    stopped, full = _mean_loss(model, results[True], y), _mean_loss(model, results[False], y)
    delta = (results[False] - x).flatten(1)
    size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert bool((size <= eps).all())
    if name in ("fgsm",):  # one step is the whole budget
        assert torch.equal(results[True], results[False])
        return
    if name == "hopskipjump":  # decision-based: no loss to ascend; it spends the whole budget, ends on the boundary
        assert int(queries[False].sum()) > int(queries[True].sum())  # ART draws its own random numbers: totals
        moved = size > 0
        assert bool(moved.any()) and torch.allclose(size[moved], torch.full_like(size[moved], eps), rtol=1e-4)
        return
    assert full > stopped + 1e-3, f"{name}: early_stop=False loss {full:.4f} vs first-fooling {stopped:.4f}"


def test_ensemble_passes_early_stop_to_every_member():
    ensemble = make_attack("strong", 0.3, early_stop=False)
    assert [a.early_stop for a in ensemble.attacks] == [False] * len(ensemble.attacks)


@pytest.mark.parametrize("name,key,value,message", [
    ("pgd", "steps", 1.5, "is an integer"),
    ("pgd", "steps", "abc", "is an integer"),
    ("pgd", "steps", 0, "must be >= 1"),
    ("pgd", "alpha", math.nan, "finite"),
    ("pgd", "alpha", -0.1, "must be > 0"),
    ("pgd", "random_start", "yes", "true or false"),
    ("square", "n_queries", "1e12", "must be >= 1 and <= 1e\\+06"),  # YAML reads 1e12 as a string
    ("square", "n_queries", 10 ** 12, "<= 1e\\+06"),
    ("square", "n_queries", math.inf, "finite"),
    ("square", "p_init", 1.5, "<= 1"),
    ("apgd-ce", "restarts", True, "is a number"),
    ("cw", "lr", math.nan, "finite"),
    ("strong", "steps", 2.5, "is an integer"),
    ("strong", "square.n_queries", -3, "must be >= 1"),
])
def test_parameters_are_typed_and_range_checked(name, key, value, message):
    norm = supported_norms(name)[0]
    with pytest.raises(InvalidArgumentError, match=message):
        make_attack(name, 0.1, norm, **{key: value})


def test_integral_values_are_accepted_and_kept_integers():
    attack = make_attack("pgd", 0.1, steps=7.0, alpha="0.01")
    assert attack.steps == 7 and isinstance(attack.steps, int) and attack.alpha == 0.01


@pytest.mark.parametrize("name,key", [("strong", "stpes"), ("strong", "square.stpes"), ("strong", "fab-t.n_queries"),
                                      ("strong-rand", "p_init"), ("bim", "restarts"), ("mifgsm", "restarts")])
def test_unknown_keys_are_refused_for_every_attack_including_ensembles(name, key):
    with pytest.raises(InvalidArgumentError):
        make_attack(name, 0.1, **{key: 3})


def test_strong_is_autoattacks_standard_ensemble():
    strong = make_attack("strong", 8 / 255)
    assert strong.members == ["apgd-ce", "apgd-t", "fab-t", "square"]
    params = strong.params()["members"]
    assert params["apgd-t"]["targets"] == 9 and params["fab-t"]["targets"] == 9
    assert params["square"]["n_queries"] == 5000 and params["square"]["p_init"] == 0.8
    assert params["apgd-ce"]["steps"] == 100 and params["fab-t"]["steps"] == 100
    l2 = make_attack("strong", 0.5, "l2")
    assert l2.members == strong.members and all(a.norm == "l2" for a in l2.attacks)
    assert make_attack("strong", 0.1, **{"square.n_queries": 100}).attacks[3].n_queries == 100
    rand = make_attack("strong-rand", 8 / 255)
    assert rand.members == ["apgd-ce", "apgd-dlr"] and all(a.eot == 20 for a in rand.attacks)


def test_targeted_flag_is_refused_where_there_is_no_targeted_version():
    """APGD's targeted version is apgd-t (runner-up targets); targeted=true with true labels is not an option."""
    with pytest.raises(InvalidArgumentError, match="targeted"):
        make_attack("apgd-ce", 0.1, targeted=True)

