"""Evasion attacks under the Attack contract; ``ATTACKS`` maps names to attack factories (one line each, here)."""
from __future__ import annotations

import functools

from trustkit.attacks.apgd import APGD
from trustkit.attacks.base import NORMS, Attack, ThreatModel, format_eps, parse_eps, perturbation_norms
from trustkit.attacks.bim import BIM
from trustkit.attacks.cw import CarliniWagnerL2
from trustkit.attacks.deepfool import DeepFool
from trustkit.attacks.ensemble import StrongEnsemble, StrongRandEnsemble
from trustkit.attacks.fab import FAB
from trustkit.attacks.fgsm import FGSM
from trustkit.attacks.fmn import FMN
from trustkit.attacks.hopskipjump import HopSkipJump
from trustkit.attacks.mifgsm import MIFGSM
from trustkit.attacks.pgd import PGD
from trustkit.attacks.square import Square
from trustkit.attacks.registry import ATTACKS, AttackFactory, accepted_params, attack_class, make_attack, supported_norms

ATTACKS.add("fgsm", FGSM, summary="Fast Gradient Sign Method, one step (Goodfellow et al. 2015)", aliases=("fgm",))
ATTACKS.add("bim", BIM, summary="Basic Iterative Method / I-FGSM, no random start (Kurakin et al. 2017)",
            aliases=("i-fgsm", "ifgsm"))
ATTACKS.add("mifgsm", MIFGSM, summary="Momentum Iterative FGSM (Dong et al. 2018)", aliases=("mi-fgsm", "mim"))
ATTACKS.add("pgd", PGD, summary="Projected Gradient Descent with random start and restarts (Madry et al. 2018)")
ATTACKS.add("apgd-ce", functools.partial(APGD, loss="ce"), summary="Auto-PGD, cross-entropy loss (Croce & Hein 2020)",
            aliases=("apgd",))
ATTACKS.add("apgd-dlr", functools.partial(APGD, loss="dlr"), summary="Auto-PGD, DLR loss (Croce & Hein 2020)")
ATTACKS.add("apgd-t", functools.partial(APGD, loss="dlr", targets=9),
            summary="targeted Auto-PGD with DLR loss over the 9 runner-up classes (APGD-T)", aliases=("apgd-dlr-t",))
ATTACKS.add("fab", FAB, summary="FAB, fast adaptive boundary attack: minimally distorted adversarial examples (Croce & Hein 2020)")
ATTACKS.add("fab-t", functools.partial(FAB, targets=9), summary="targeted FAB over the 9 runner-up classes (FAB-T, AutoAttack's member)")
ATTACKS.add("cw", CarliniWagnerL2, summary="Carlini-Wagner L2, minimum-norm (Carlini & Wagner 2017)",
            aliases=("cw-l2", "carlini-wagner"))
ATTACKS.add("fmn", FMN, summary="Fast Minimum-Norm attack, linf and l2 (Pintor et al. 2021)")
ATTACKS.add("deepfool", DeepFool, summary="DeepFool, minimum-norm (Moosavi-Dezfooli et al. 2016)")
ATTACKS.add("strong", StrongEnsemble, summary="AutoAttack's standard ensemble: APGD-CE, APGD-T, FAB-T, Square-5000, "
            "each on the points still standing (Croce & Hein 2020)", aliases=("autoattack",))
ATTACKS.add("strong-rand", StrongRandEnsemble, summary="AutoAttack's version for randomised models: APGD-CE and "
            "APGD-DLR with EOT over 20 draws")
ATTACKS.add("square", Square, summary="Square attack, score-based black-box random search (Andriushchenko et al. 2020)")
ATTACKS.add("hopskipjump", HopSkipJump, summary="HopSkipJump, decision-based black-box (Chen et al. 2020), ART's search "
            "under a per-image query budget", aliases=("hsj",))


__all__ = ["APGD", "ATTACKS", "AttackFactory", "BIM", "MIFGSM", "NORMS", "Attack", "CarliniWagnerL2", "DeepFool", "FAB", "FGSM", "FMN", "HopSkipJump", "PGD",
           "Square", "StrongEnsemble", "StrongRandEnsemble", "ThreatModel", "accepted_params", "attack_class",
           "supported_norms", "format_eps", "make_attack", "parse_eps",
           "perturbation_norms"]
