"""Generative models on MNIST: time per epoch (DCGAN, VAE, cGAN, ACGAN), conditional-GAN class agreement,
and the VAE's test NLL.

    python benchmarks/gen_mnist.py --data-root ../shared/data

Trains with trustkit's defaults (batch 128, Adam; DCGAN-family 2e-4 / β1 0.5, VAE 1e-3) and saves the models
in the store ($TRUSTKIT_HOME, entries gen-<model>-mnist), so ``trustkit gen sample`` works afterwards.
Per-epoch times are medians over the epochs: wall seconds and CPU seconds of the process (all threads).
The class agreement uses the zoo ``cnn`` trained on MNIST (trained and cached first if missing): the share
of samples generated for class c that the classifier labels c with softmax probability >= 0.9.
The NLL is −log p(x) bounded with K importance samples (Burda et al. 2016) on stochastically binarised test
images (one fixed binarisation), in nats; published standard VAEs reach ~85-90 nats with K = 5000.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, markdown_table  # noqa: E402

from trustkit.data import load_dataset  # noqa: E402
from trustkit.generative.features import FeatureExtractor  # noqa: E402
from trustkit.generative.likelihood import batched, binarize, elbo, importance_weighted_log_likelihood  # noqa: E402
from trustkit.generative.metrics import conditional_agreement  # noqa: E402
from trustkit.generative.run import train_generator  # noqa: E402
from trustkit.models.loading import resolve_model  # noqa: E402
from trustkit.runtime import set_quiet  # noqa: E402
from trustkit.train.zoo import ensure_trained  # noqa: E402


def per_epoch(history: list[dict[str, float]], key: str) -> float:
    return statistics.median(e[key] for e in history)


def train(name: str, dataset: str, epochs: int, data_root: str, seed: int) -> tuple[object, list[dict[str, float]], float]:
    started = time.perf_counter()
    trained = train_generator(name, dataset, epochs=epochs, data_root=data_root, seed=seed, device="cpu")
    return trained.model, trained.history.epochs, time.perf_counter() - started


def class_agreement(model, classifier, per_class: int, seed: int) -> dict[str, object]:
    labels = torch.arange(10).repeat_interleave(per_class)
    samples = model.sample(len(labels), labels, generator=torch.Generator().manual_seed(seed))
    probabilities = FeatureExtractor(classifier, torch.device("cpu"))(samples).probabilities
    overall = conditional_agreement(probabilities, labels, 0.9)
    by_class = [conditional_agreement(probabilities[labels == c], labels[labels == c], 0.9)["confident"]
                for c in range(10)]
    return {**overall, "worst": min(by_class), "worst_class": by_class.index(min(by_class)), "n": len(labels)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--gan-epochs", type=int, default=5, help="epochs of the conditional GANs")
    parser.add_argument("--dcgan-epochs", type=int, default=3, help="epochs of the unconditional DCGAN (timing)")
    parser.add_argument("--vae-epochs", type=int, default=20)
    parser.add_argument("--iw-samples", type=int, nargs="+", default=[100, 500], help="K values of the NLL bound")
    parser.add_argument("--nll-images", type=int, default=10_000)
    parser.add_argument("--per-class", type=int, default=1000, help="conditional samples per class")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dataset", default="mnist", help="digits gives a quick check of the script itself")
    parser.add_argument("--models", default="dcgan,vae,cgan,acgan",
                        help="comma list of the models to train (the NLL needs vae)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    set_quiet(True)
    print(f"# {machine()}; load average before {os.getloadavg()[0]:.2f}", flush=True)

    started = time.perf_counter()
    ensure_trained("cnn", args.dataset, device="cpu", data_root=args.data_root)
    classifier = resolve_model("cnn", args.dataset, data_root=args.data_root, device="cpu").module
    print(f"classifier cnn-{args.dataset} ready in {time.perf_counter() - started:.1f} s", flush=True)

    timing_rows, agreement_rows = [], []
    models = {}
    epochs_of = {"dcgan": args.dcgan_epochs, "vae": args.vae_epochs, "cgan": args.gan_epochs, "acgan": args.gan_epochs}
    chosen = [name.strip() for name in args.models.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(epochs_of))
    if unknown:
        parser.error(f"--models: unknown {', '.join(unknown)}; choose from {', '.join(epochs_of)}")
    for name in chosen:
        epochs = epochs_of[name]
        model, history, seconds = train(name, args.dataset, epochs, args.data_root, args.seed)
        models[name] = model
        params = sum(p.numel() for p in model.parameters())
        timing_rows.append([name, epochs, f"{params:,}", f"{per_epoch(history, 'seconds'):.1f}",
                            f"{per_epoch(history, 'cpu_seconds'):.1f}", f"{seconds:.0f}"])
        print(f"{name}: {epochs} epochs, {per_epoch(history, 'seconds'):.1f} s/epoch wall, "
              f"{per_epoch(history, 'cpu_seconds'):.1f} s/epoch CPU; last {history[-1]}", flush=True)
        if model.conditional:
            result = class_agreement(model, classifier, args.per_class, args.seed)
            agreement_rows.append([name, epochs, result["n"], f"{result['accuracy']:.1%}",
                                   f"**{result['confident']:.1%}**",
                                   f"{result['worst']:.1%} (digit {result['worst_class']})"])
            print(f"{name}: {result}", flush=True)

    nll_rows = []
    if "vae" in models:
        nll_rows = vae_nll(models["vae"], args)
    print(f"\n# {machine()}; load average after {os.getloadavg()[0]:.2f}; total {time.perf_counter() - started:.0f} s\n")
    print(markdown_table(["model", "epochs", "parameters", "wall s/epoch (median)", "CPU s/epoch (median)",
                          "training s"], timing_rows))
    print()
    print(markdown_table(["model", "epochs", "samples", "labelled as asked", "as asked with ≥ 90% confidence",
                          "worst class (≥ 90%)"], agreement_rows))
    if nll_rows:
        print()
        print(markdown_table([f"VAE ({args.vae_epochs} epochs), binarised test images", "−log p(x) (nats)",
                              "seconds"], nll_rows))


def vae_nll(vae, args: argparse.Namespace) -> list[list[str]]:
    """Rows of the ELBO and the importance-weighted bounds on the binarised test images, in nats."""
    test = load_dataset(args.dataset, "test", args.data_root)
    x, _ = test.tensors(torch.arange(min(args.nll_images, len(test))))
    target = binarize(x, torch.Generator().manual_seed(args.seed))
    nll_rows = []
    generator = torch.Generator().manual_seed(args.seed + 1)
    t0 = time.perf_counter()
    lower = batched(lambda xb, yb: elbo(vae, xb, yb, generator), target, None, 500, torch.device("cpu"))
    nll_rows.append(["ELBO (K = 1)", f"{-lower.mean():.2f}", f"{time.perf_counter() - t0:.0f}"])
    for k in args.iw_samples:
        t0 = time.perf_counter()
        bound = batched(lambda xb, yb, k=k: importance_weighted_log_likelihood(vae, xb, yb, k=k, generator=generator),
                        target, None, 100, torch.device("cpu"))
        nll_rows.append([f"IW bound K = {k}", f"**{-bound.mean():.2f}**", f"{time.perf_counter() - t0:.0f}"])
        print(f"vae NLL K={k}: {-bound.mean():.2f} nats on {len(x):,} images", flush=True)
    return nll_rows


if __name__ == "__main__":
    main()
