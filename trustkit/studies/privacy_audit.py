"""The privacy audit (``trustkit privacy audit``) as engine cells.

One group — the target model, its data, the victims and the re-identification classifier, resolved once in
the driver — and three kinds of cell:

- an *inversion* cell (layer, attack, mitigation): one feature-inversion attack rebuilds the victims from one
  layer's features, raw or under one split-layer mitigation (the mitigation curve runs on one layer, without
  the generative-prior attack: it optimises the same matching objective as white-box, through the generator);
- a *membership* cell: the membership-inference attacks;
- a *model-inversion* cell: MIFace class representatives, re-identified.

The baseline rows (mean image, originals), each layer's risk rating and the sanity checks are computed from
the finished cells. A run killed at any moment resumes from its finished cells; trained inverse networks and
the re-identification classifier are reused from the store. What the numbers mean: :mod:`trustkit.privacy.audit`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import pandas as pd
import torch

from trustkit.fingerprint import cache_key, file_fingerprint, tensor_fingerprint
from trustkit.images import pack_images
from trustkit.models import MODELS
from trustkit.privacy.audit import (AuditConfig, AuditSubject, audit_layers, invert, load_subject, membership,
                                    model_inversion, rate_layers, reference_rows, subject_info)
from trustkit.privacy.risk import audit_checks
from trustkit.runtime import seed_everything
from trustkit.sanity import Check
from trustkit.studies.base import RUN_ONLY_SETTINGS, Memo, Progress, StudyOutput, TrainStep




@dataclass(frozen=True)
class InversionCell:
    """``attack`` rebuilds the victims from ``layer``'s features; ``mitigation`` indexes the config's
    mitigations (None: the raw features)."""

    layer: str
    attack: str
    mitigation: int | None = None
    mitigation_name: str = "none"

    group = "audit"

    def title(self) -> str:
        under = f" under {self.mitigation_name}" if self.mitigation is not None else ""
        return f"{self.attack} inversion of {self.layer}{under}"


@dataclass(frozen=True)
class MembershipCell:
    """Membership inference against the target (loss, confidence and ART's black-box attack)."""

    group = "audit"

    def title(self) -> str:
        return "membership inference"


@dataclass(frozen=True)
class ModelInversionCell:
    """MIFace class representatives of the target, scored by the re-identification classifier."""

    group = "audit"

    def title(self) -> str:
        return "model inversion"


AuditCell = InversionCell | MembershipCell | ModelInversionCell


@dataclass
class PrivacyAuditStudy:
    """A validated audit configuration as engine cells."""

    config: AuditConfig
    layer_aliases: list[str]
    mitigation_layer: str
    kind: str = "privacy-audit"

    def cells(self) -> Sequence[AuditCell]:
        config = self.config
        cells: list[AuditCell] = [InversionCell(layer, attack) for layer in self.layer_aliases
                                  for attack in config.attacks]
        for index, text in enumerate(config.mitigations):
            cells += [InversionCell(self.mitigation_layer, attack, index, text) for attack in config.attacks
                      if attack != "gen-prior"]
        if config.membership:
            cells.append(MembershipCell())
        if config.model_inversion:
            cells.append(ModelInversionCell())
        return cells

    def description(self) -> str:
        return f"privacy audit of {self.config.model} on {self.config.dataset}"

    def settings(self) -> dict[str, Any]:
        return asdict(self.config)

    def prerequisites(self) -> list[TrainStep]:
        config = self.config
        return [TrainStep(config.model, config.dataset, config.data_root, config.download)] \
            if config.model in MODELS else []

    def prepare(self, cells: Sequence[AuditCell], device: torch.device) -> AuditSubject:
        return load_subject(self.config, device)

    def key(self, cell: AuditCell, state: AuditSubject, device_type: str) -> str:
        config = self.config
        victims, labels = state.victims
        # the shadow-model part is a study of its own (audit_study): its size does not change these cells
        settings = {k: v for k, v in asdict(config).items() if k not in RUN_ONLY_SETTINGS and k != "shadow_models"}
        reid = state.reid
        return cache_key({"audit": {"cell": type(cell).__name__, **asdict(cell)}, "settings": settings,
                          "model": state.fingerprint, "victims": tensor_fingerprint(victims, labels),
                          "train": tensor_fingerprint(*state.train_set.tensors()),
                          "reid": {"source": file_fingerprint(reid.source) if _is_file(reid.source) else reid.source,
                                   "test_accuracy": reid.test_accuracy}, "device": device_type})

    def run(self, cell: AuditCell, state: AuditSubject, device: torch.device, bar: Progress | None) -> dict[str, Any]:
        config = self.config
        seed_everything(config.seed)  # each cell reseeds: results do not depend on the order or the process
        if isinstance(cell, InversionCell):
            done = invert(state, cell.layer, cell.attack, cell.mitigation, device)
            return {"row": done["row"], "images": pack_images(done["images"]), "params": done["params"],
                    "notes": done["notes"]}
        if isinstance(cell, MembershipCell):
            result, frame, note = membership(state.model, state.train_set, state.test_set, config, device)
            roc = {attack: [fpr.tolist(), tpr.tolist()] for attack, (fpr, tpr) in result.roc.items()} if result else {}
            return {"rows": frame.to_dict("records"), "roc": roc, "note": note}
        result, frame, note = model_inversion(state.model, state.spec, state.reid, config, device)
        if result is None:
            return {"rows": [], "note": note}
        x_train, y_train = state.train_set.tensors()
        means = torch.stack([x_train[y_train == c].mean(0) for c in result.classes])
        return {"rows": frame.to_dict("records"), "classes": list(result.classes), "note": note,
                "images": pack_images(result.images.float().cpu()), "real_means": pack_images(means)}

    def portable(self, state: AuditSubject) -> AuditSubject:
        return state.to(torch.device("cpu"))

    def localize(self, state: AuditSubject, device: torch.device) -> AuditSubject:
        return state.to(device)

    def finish_group(self, cells: Sequence[AuditCell], state: AuditSubject, device: torch.device,
                     memo: Memo) -> dict[str, Any]:
        victims, _ = state.victims
        return {"reference_rows": reference_rows(state), "info": subject_info(state),
                "victims": pack_images(victims), "subject": state}

    def _group(self, output: StudyOutput) -> dict[str, Any]:
        return output.groups.get("audit", {})

    def frames(self, output: StudyOutput) -> dict[str, pd.DataFrame]:
        group = self._group(output)
        inversions = [r.data["row"] for r in output.finished if isinstance(r.cell, InversionCell)]
        results = pd.DataFrame(group.get("reference_rows", []) + inversions)
        subject = group.get("subject")
        layers = rate_layers(results, subject) if subject is not None and len(results) else pd.DataFrame()
        if subject is not None and len(results):
            results["reid_chance"] = subject.reid.chance
            results["reid_target"] = subject.reid.what
        membership_rows = next((r.data["rows"] for r in output.finished if isinstance(r.cell, MembershipCell)), [])
        mi_rows = next((r.data["rows"] for r in output.finished if isinstance(r.cell, ModelInversionCell)), [])
        return {"results.csv": results, "layers.csv": layers, "membership.csv": pd.DataFrame(membership_rows),
                "model_inversion.csv": pd.DataFrame(mi_rows)}

    def checks(self, tables: dict[str, pd.DataFrame], output: StudyOutput) -> list[Check]:
        subject = self._group(output).get("subject")
        if subject is None or not len(tables["layers.csv"]):
            return []
        top1 = self._group(output)["info"]["reid"]["original_top1"]
        return audit_checks(tables["results.csv"], tables["layers.csv"], subject.reid, top1,
                            len(subject.victim_index))

    def group_checks(self, output: StudyOutput) -> list[Check]:
        return []

    def headline(self, output: StudyOutput) -> tuple[str, str, str]:
        group = self._group(output)
        model = group.get("info", {}).get("model_name", self.config.model)
        dataset = group["subject"].spec.name if "subject" in group else self.config.dataset
        n = len(group["subject"].victim_index) if "subject" in group else 0
        return (f"privacy-{model}-{dataset}", f"Privacy audit: {model} on {dataset}",
                f"feature inversion of {len(self.layer_aliases)} layer(s), {n} victims")

    def run_extras(self, output: StudyOutput) -> dict[str, Any]:
        finished = output.finished
        notes = {f"{r.cell.attack}/{r.cell.layer}/{r.cell.mitigation_name}": r.data["notes"] for r in finished
                 if isinstance(r.cell, InversionCell)}
        params = {r.cell.attack: r.data["params"] for r in finished if isinstance(r.cell, InversionCell)}

        def note(kind: type, requested: bool) -> str:
            if not requested:
                return "not requested"
            found = next((r for r in output.records if isinstance(r.cell, kind)), None)
            if found is None or found.data is None:
                return f"failed ({found.error})" if found is not None else "not run"
            return found.data["note"]

        return {**self._group(output).get("info", {}), "attack_params": params, "attack_notes": notes,
                "membership_note": note(MembershipCell, self.config.membership),
                "model_inversion_note": note(ModelInversionCell, self.config.model_inversion)}


def _is_file(path: str) -> bool:
    import os

    return bool(path) and os.path.isfile(path)


def privacy_audit_study(config: AuditConfig) -> PrivacyAuditStudy:
    """Validate ``config`` (attacks, budgets, mitigations, layer names) before anything is trained."""
    config.validate()
    _, layers, mitigation_layer = audit_layers(config)
    return PrivacyAuditStudy(config, [layer.alias for layer in layers], mitigation_layer.alias)


def audit_study(config: AuditConfig) -> Any:
    """The study ``trustkit privacy audit`` runs: the audit alone, or — with ``shadow_models`` > 0 — the audit and
    the shadow-model membership study (LiRA, RMIA; :mod:`trustkit.studies.membership`) of the same architecture
    and data set as one combined run and report."""
    audit = privacy_audit_study(config)
    if config.shadow_models == 0:
        return audit
    from trustkit.errors import InvalidArgumentError
    from trustkit.models.loading import zoo_arch
    from trustkit.studies.combined import CombinedStudy
    from trustkit.studies.membership import MembershipConfig, membership_study

    arch = config.model if config.model in MODELS else zoo_arch(config.model)
    if arch is None:
        raise InvalidArgumentError(f"--shadow-models trains models like the target, so --model must be a zoo "
                                   f"architecture or its store entry (cnn, cnn-digits), got '{config.model}'; or "
                                   "drop --shadow-models")
    shadows = membership_study(MembershipConfig(
        model=arch, dataset=config.dataset, shadow_models=config.shadow_models, seed=config.seed,
        device=config.device, data_root=config.data_root, download=config.download, trust_code=config.trust_code,
        out=config.out, use_cache=config.use_cache, jobs=config.jobs, backend=config.backend,
        ray_address=config.ray_address))
    model = MODELS.canonical(arch)
    return CombinedStudy([audit, shadows], f"privacy-{model}-{config.dataset}",
                         f"Privacy audit: {config.model} on {config.dataset}",
                         f"feature inversion, membership inference (with {config.shadow_models} shadow models), "
                         "model inversion", {"model": config.model, "dataset": config.dataset, "seed": config.seed})
