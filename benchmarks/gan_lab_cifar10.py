"""Time per training step (and per epoch, extrapolated) of the CIFAR-10 GAN lab on this machine.

    python benchmarks/gan_lab_cifar10.py --data-root ../shared/data [--repeats 3] [--batch 32]

Models: ``disc196`` trained alone as a classifier (its default recipe: Adam, batch 128), ``acgan-cifar`` (one
D + G step) and ``wgan-gp-cifar`` (one full cycle of 5 critic steps and a generator step, averaged per batch).
Steps draw random real CIFAR-10 training batches; the first step is a warm-up. An epoch is 50,000 images, so
epoch time = seconds per image × 50,000 (the cost grows in proportion to the images of a batch). Prints one
Markdown table: median and range over ``--repeats`` timed steps.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per model (after one warm-up)")
    parser.add_argument("--batch", type=int, default=32, help="GAN batch size for the timing")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    from trustkit.data import get_spec, load_dataset
    from trustkit.data.base import to_unit_float
    from trustkit.generative import build_generative
    from trustkit.generative.train import GenTrainConfig, _Stepper
    from trustkit.models import build_model
    from trustkit.runtime import select_device
    from trustkit.train.defaults import default_config

    device = select_device(args.device)
    torch.manual_seed(0)
    train = load_dataset("cifar10", "train", args.data_root)
    draw = torch.Generator().manual_seed(0)

    def batch(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.randint(0, len(train.labels), (n,), generator=draw)
        return to_unit_float(train.images[index]).to(device), train.labels[index].to(device)

    def seconds(step, count: int) -> list[float]:  # noqa: ANN001
        step()  # warm-up
        walls = []
        for _ in range(count):
            if device.type == "cuda":
                torch.cuda.synchronize()
            tic = time.perf_counter()
            step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            walls.append(time.perf_counter() - tic)
        return walls

    rows = []
    config = default_config("disc196", "cifar10")
    classifier = build_model("disc196", get_spec("cifar10")).to(device).train()
    optimizer = torch.optim.Adam(classifier.parameters(), lr=config.lr)

    def classifier_step() -> None:
        x, y = batch(config.batch_size)
        loss = torch.nn.functional.cross_entropy(classifier(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    rows.append(("disc196 classifier", config.batch_size, seconds(classifier_step, args.repeats)))
    for name in ("acgan-cifar", "wgan-gp-cifar"):
        model = build_generative(name, get_spec("cifar10")).to(device).train()
        stepper = _Stepper(model, GenTrainConfig(batch_size=args.batch), device)
        cycle = model.critic_steps  # a WGAN-GP generator step comes every 5 batches: time whole cycles

        def gan_step(stepper=stepper, cycle=cycle) -> None:  # noqa: ANN001
            for _ in range(cycle):
                stepper.step(*batch(args.batch))

        walls = [w / cycle for w in seconds(gan_step, args.repeats)]
        rows.append((name, args.batch, walls))
    print(f"| model | batch | s/step median (range) | min/epoch (50,000 images) |  [{device}, "
          f"{torch.get_num_threads()} threads]")
    print("|---|---|---|---|")
    for name, size, walls in rows:
        median = statistics.median(walls)
        print(f"| {name} | {size} | {median:.2f} ({min(walls):.2f}–{max(walls):.2f}) | "
              f"{median / size * 50_000 / 60:.0f} |")


if __name__ == "__main__":
    main()
