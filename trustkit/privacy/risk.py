"""How an audit rates a layer's leakage, and the audit's own sanity checks (docs/privacy.md).

A layer's risk is the worst case over the attacks on its unmitigated features: *high* when a reconstruction is
structurally close (SSIM >= 0.5) and beats the mean-image baseline, or an independent classifier re-identifies
most victims from it; *medium* when it is recognisable or re-identification beats chance significantly; else
*low*.
"""
from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

import pandas as pd

from trustkit.privacy.metrics import UNRECOGNISABLE_SSIM, chance_significant
from trustkit.privacy.reid import ReidClassifier
from trustkit.sanity import Check

HIGH_SSIM, HIGH_REID = 0.5, 0.5
BASELINE_MARGIN = 0.05  # SSIM must beat the mean-image baseline by this much to count
DEPTH_TOLERANCE_DB = 1.0  # sanity: a deeper layer may beat a shallower one by this much PSNR before a flag


class PrivacyCheck(Check):
    """A sanity check of the audit; its documentation lives in docs/privacy.md."""

    def to_dict(self) -> dict[str, str]:
        return {**asdict(self), "docs": f"docs/privacy.md#{self.anchor}"}


def rate_layer(rows: pd.DataFrame, baseline_ssim: float, chance: float, n: int) -> dict[str, Any]:
    """Worst case over the attacks of one layer's unmitigated rows, and its risk rating (module doc)."""
    best_ssim = float(rows["ssim"].max())
    best_psnr = float(rows["psnr"].max())
    top1 = float(rows["reid_top1"].max()) if rows["reid_top1"].notna().any() else float("nan")
    top5 = float(rows["reid_top5"].max()) if rows["reid_top5"].notna().any() else float("nan")
    above_baseline = best_ssim >= baseline_ssim + BASELINE_MARGIN
    significant = not math.isnan(top1) and chance_significant(top1, n, chance)
    if (best_ssim >= HIGH_SSIM and above_baseline) or (significant and top1 >= HIGH_REID):
        risk = "high"
    elif (best_ssim >= UNRECOGNISABLE_SSIM and above_baseline) or significant:
        risk = "medium"
    else:
        risk = "low"
    reasons = [f"best SSIM {best_ssim:.2f} ({'above' if above_baseline else 'not above'} the mean-image baseline "
               f"{baseline_ssim:.2f})"]
    if not math.isnan(top1):
        reasons.append(f"re-id top-1 {top1:.0%} vs chance {chance:.1%}"
                       f" ({'significant' if significant else 'not significant'})")
    strongest = rows.sort_values("ssim", ascending=False).iloc[0]["attack"]
    return {"best_psnr": best_psnr, "best_ssim": best_ssim, "best_reid_top1": top1, "best_reid_top5": top5,
            "strongest_attack": strongest, "risk": risk, "why": "; ".join(reasons)}


def audit_checks(results: pd.DataFrame, layer_rows: pd.DataFrame, reid: ReidClassifier | None, original_top1: float,
            n: int) -> list[Check]:
    checks: list[Check] = []
    plain = results[(results["mitigation"] == "none") & (results["kind"] == "attack")]
    # 1. data-processing inequality: deeper features are a function of shallower ones, so no attack should
    #    rebuild better from a deeper layer; if one does, the shallower optimisation/training fell short.
    problems = []
    for attack, group in plain.groupby("attack", sort=False):
        ordered = group.sort_values("layer_order")
        for i in range(len(ordered) - 1):
            shallow, deep = ordered.iloc[i], ordered.iloc[i + 1:]
            worse = deep[deep["psnr"] > shallow["psnr"] + DEPTH_TOLERANCE_DB]
            if len(worse):
                problems.append(f"{attack} rebuilds {worse.iloc[0]['layer']} at {worse.iloc[0]['psnr']:.1f} dB but the "
                                f"shallower {shallow['layer']} only at {shallow['psnr']:.1f} dB")
                break
    if plain["layer"].nunique() < 2:
        checks.append(PrivacyCheck("leakage falls with depth", "skipped", "only one layer audited", "privacy-depth"))
    elif problems:
        checks.append(PrivacyCheck("leakage falls with depth", "flag", "; ".join(problems) + ": the shallower layer's attack "
                            "has not converged (raise --steps / --inverse-steps); read its numbers as a lower bound "
                            "on leakage", "privacy-depth"))
    else:
        checks.append(PrivacyCheck("leakage falls with depth", "pass", f"no attack rebuilds a deeper layer more than "
                            f"{DEPTH_TOLERANCE_DB:g} dB better than a shallower one", "privacy-depth"))
    # 2. the attacks must beat the trivial reconstruction (the mean training image) at the shallowest layer.
    baseline = results[results["kind"] == "baseline"]
    if len(plain) and len(baseline):
        first = plain[plain["layer_order"] == plain["layer_order"].min()]
        base_psnr = float(baseline["psnr"].iloc[0])
        losers = first[first["psnr"] <= base_psnr]
        if len(losers):
            checks.append(PrivacyCheck("attacks beat the mean-image baseline", "flag",
                                f"at {first['layer'].iloc[0]}, {', '.join(losers['attack'])} do(es) no better than the "
                                f"mean training image ({base_psnr:.1f} dB): the attack failed, not the layer protected",
                                "privacy-baseline"))
        else:
            checks.append(PrivacyCheck("attacks beat the mean-image baseline", "pass",
                                f"at {first['layer'].iloc[0]} every attack beats the mean image ({base_psnr:.1f} dB)",
                                "privacy-baseline"))
    # 3. the re-identification classifier must recognise the original victims, else its numbers mean nothing.
    if reid is None:
        checks.append(PrivacyCheck("re-identification classifier works", "skipped", "no re-identification", "privacy-reid"))
    elif original_top1 >= 0.5 and chance_significant(original_top1, n, reid.chance):
        checks.append(PrivacyCheck("re-identification classifier works", "pass",
                            f"names {original_top1:.0%} of the original victims (chance {reid.chance:.1%})",
                            "privacy-reid"))
    else:
        checks.append(PrivacyCheck("re-identification classifier works", "flag",
                            f"names only {original_top1:.0%} of the original victims (chance {reid.chance:.1%}): "
                            "re-identification rates are not meaningful; raise --reid-steps", "privacy-reid"))
    return checks


