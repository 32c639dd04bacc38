"""Classifier zoo. Every model takes [0, 1] images N×C×H×W and returns logits; normalisation is inside."""
from __future__ import annotations

from typing import Callable

from torch import nn

from trustkit.data import DatasetSpec
from trustkit.models import cnn, cnn_small, disc196, mlp, preact_resnet, resnet, softmax
from trustkit.models.layers import Normalize, NormalizedClassifier
from trustkit.registry import Registry

ModelFactory = Callable[[tuple[int, int, int], int], nn.Module]

MODELS: Registry[ModelFactory] = Registry("model")
MODELS.add("softmax", softmax.build, summary="multinomial logistic regression (one linear layer)",
           aliases=("logreg", "logistic"))
MODELS.add("mlp", mlp.build, summary="MLP, two hidden layers of 256 ReLU units")
MODELS.add("cnn", cnn.build, summary="small convnet conv32-conv64-fc128 (421k parameters on MNIST)")
MODELS.add("cnn-small", cnn_small.build, summary="conv16-conv32 (stride 2)-fc100, the fast-AT MNIST network of Wong "
           "et al. 2020 (166k parameters on MNIST)", aliases=("smallcnn",))
MODELS.add("resnet", resnet.build, summary="ResNet-18, CIFAR stem (3×3, stride 1), any input from 8×8",
           aliases=("resnet18", "resnet-18"))
MODELS.add("resnet20", resnet.build_resnet20, summary="CIFAR ResNet-20 (He et al. 2016), 16-64 channels, 0.27 M "
           "parameters", aliases=("resnet-20",))
MODELS.add("preact-resnet18", preact_resnet.build, summary="pre-activation ResNet-18, the fast adversarial "
           "training benchmark model (Wong et al. 2020)", aliases=("preact", "preactresnet18"))
MODELS.add("disc196", disc196.build, summary="the CIFAR-10 GAN lab's discriminator (8 conv 3×3, 196 channels, layer "
           "norm) trained alone as a classifier (fc10 head; 2.43 M parameters)")


def build_model(arch: str, spec: DatasetSpec) -> NormalizedClassifier:
    """A freshly initialised zoo model ``arch`` for data set ``spec`` (normalisation layer included)."""
    net = MODELS.get(arch)(spec.shape, spec.num_classes)
    return NormalizedClassifier(net, spec.mean, spec.std)


__all__ = ["MODELS", "Normalize", "NormalizedClassifier", "build_model"]
