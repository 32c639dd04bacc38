#!/usr/bin/env bash
# The GPU proof: run it first whenever a GPU machine is lent, and record its output in benchmarks/RESULTS.md
# with the device name. Budget: under 8 minutes on one GPU. Each step prints its wall time; the last lines are
# one table. Steps that need a trustkit feature not built yet say so instead of timing a stand-in.
#
#     bash benchmarks/gpu_proof.sh [DATA_ROOT]      # DATA_ROOT holds MNIST/ and cifar10-jpeg/ (default ../shared/data)
set -euo pipefail
DATA="${1:-../shared/data}"
export TRUSTKIT_HOME="${TRUSTKIT_HOME:-$(mktemp -d)}"   # a fresh store: training is part of what is measured
export RAY_AUTH_MODE=disabled
OUT="$(mktemp -d)"
ROWS=()
step() {  # step NAME COMMAND...: run, time, keep the last line of its output
  local name="$1"; shift
  local started=$SECONDS
  local last
  last="$("$@" 2>&1 | tail -n 1)" || { ROWS+=("| $name | FAILED | $last |"); return 0; }
  ROWS+=("| $name | $((SECONDS - started)) s | ${last//|//} |")
}
python - <<'PY'
import torch
assert torch.cuda.is_available(), "no CUDA device visible: this script proves the GPU path"
print("device:", torch.cuda.get_device_name(0), "| torch", torch.__version__, "| CUDA", torch.version.cuda)
PY
# 1. the CUDA path of train and bench (device auto picks CUDA; training uses bf16 autocast + channels-last)
step "train cnn on MNIST (3 epochs, cuda)" trustkit -q train --model cnn --dataset mnist --data-root "$DATA" --epochs 3
step "bench fgsm,pgd,strong on it (1,000 images)" trustkit -q bench fgsm,pgd,strong --model cnn --dataset mnist \
  --data-root "$DATA" --n 1000 --eps 0.1,0.3 --no-probes --out "$OUT"
# 2. ResNet-18 (zoo resnet) on CIFAR-10: PGD-10 images/s, trustkit vs torchattacks vs ART on the same GPU
step "train resnet on CIFAR-10 (2 epochs, cuda)" trustkit -q train --model resnet --dataset cifar10 \
  --data-root "$DATA" --epochs 2
step "PGD-10 speed, resnet on CIFAR-10 vs torchattacks/ART" python benchmarks/attack_speed.py --dataset cifar10 \
  --model resnet --eps 8/255 --n 1000 --batch-size 500 --repeats 3 --attacks pgd10 --data-root "$DATA"
# 3. one fast-AT CIFAR-10 epoch (PreAct ResNet-18, FGSM-RS, bf16): the 46%-in-4-minutes target extrapolated
step "fast AT CIFAR-10: 1 epoch + PGD-50x10 on 1,000" python benchmarks/fast_at_cifar10.py --data-root "$DATA" \
  --epochs 1 --n 1000 --restarts 1
# 5. the CIFAR-10 GAN lab on the GPU: time per step of disc196, acgan-cifar, wgan-gp-cifar (per epoch extrapolated)
step "CIFAR-10 GAN lab: s/step and min/epoch (cuda)" python benchmarks/gan_lab_cifar10.py --data-root "$DATA" \
  --device cuda --batch 128 --repeats 5
# 6. attributions on the GPU: trustkit explain on the MNIST cnn trained above
step "explain cnn on MNIST (5 methods, cuda)" trustkit -q explain --model cnn --dataset mnist --data-root "$DATA" \
  --device cuda --out "$OUT"
# 4. reduced-precision attack iterations (bf16/fp16 vs fp32): robust accuracy judged in fp32, and the time
step "--precision bf16/fp16 vs fp32, cnn on MNIST" python benchmarks/attack_precision.py --dataset mnist --model cnn \
  --data-root "$DATA" --n 1000 --device cuda --fp16 --batch-size 1000
step "--precision bf16/fp16 vs fp32, resnet on CIFAR-10" python benchmarks/attack_precision.py --dataset cifar10 \
  --model resnet --data-root "$DATA" --n 1000 --eps 2/255,8/255 --device cuda --fp16 --batch-size 500
echo
echo "| step | wall | last line |"
echo "|---|---|---|"
printf '%s\n' "${ROWS[@]}"
