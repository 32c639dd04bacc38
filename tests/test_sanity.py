import pandas as pd

from trustkit.sanity import run_checks


def frame(rows):
    base = {"model": "m", "norm": "linf", "n": 100, "clean_accuracy": 0.9}
    return pd.DataFrame([{**base, **r} for r in rows])


def statuses(results):
    return {c.name: c.status for c in run_checks(results)}


def test_healthy_results_pass():
    results = frame([{"attack": "fgsm", "eps": 0.1, "robust_accuracy": 0.5},
                     {"attack": "fgsm", "eps": 0.2, "robust_accuracy": 0.3},
                     {"attack": "pgd", "eps": 0.1, "robust_accuracy": 0.4},
                     {"attack": "pgd", "eps": 0.2, "robust_accuracy": 0.1}])
    found = statuses(results)
    assert found["robust accuracy falls with epsilon"] == "pass"
    assert found["iterative attacks beat single-step ones"] == "pass"
    assert found["white-box attacks beat black-box ones"] == "skipped"


def test_rising_accuracy_is_flagged_but_one_sample_of_noise_is_not():
    rising = frame([{"attack": "fgsm", "eps": 0.1, "robust_accuracy": 0.30},
                    {"attack": "fgsm", "eps": 0.3, "robust_accuracy": 0.45}])
    assert statuses(rising)["robust accuracy falls with epsilon"] == "flag"
    noise = frame([{"attack": "fgsm", "eps": 0.1, "robust_accuracy": 0.30},
                   {"attack": "fgsm", "eps": 0.3, "robust_accuracy": 0.31}])
    assert statuses(noise)["robust accuracy falls with epsilon"] == "pass"


def test_iterative_weaker_than_fgsm_is_flagged():
    results = frame([{"attack": "fgsm", "eps": 0.1, "robust_accuracy": 0.2},
                     {"attack": "pgd", "eps": 0.1, "robust_accuracy": 0.6}])
    checks = {c.name: c for c in run_checks(results)}
    assert checks["iterative attacks beat single-step ones"].status == "flag"
    assert "pgd 60.0% vs fgsm 20.0%" in checks["iterative attacks beat single-step ones"].detail
    assert checks["robust accuracy falls with epsilon"].status == "skipped"
