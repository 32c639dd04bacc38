"""Olivetti faces (AT&T Laboratories Cambridge): 400 grey 64×64 images of 40 people, 10 each; label = person.

Two sources are read, neither of them a pickle:

- a folder of PNG files ``<root>/olivetti/<person 00-39>/<0-9>.png`` (8-bit grey, 64×64; the offline copy has
  this layout). Files are read by constructed name, person-major then image 0-9, which is scikit-learn's order
  (its ``target`` is ``index // 10``): checked against the original ``olivettifaces.mat``, every PNG is the
  image of the same index there, within half a grey level of scikit-learn's floats (PNG value / 255);
- the original ``olivettifaces.mat`` (Sam Roweis' MATLAB file that scikit-learn downloads), looked for in
  ``<root>/olivetti/``, ``<root>/`` and ``<root>/scikit_learn_data/``. Its SHA-256 must equal the one scikit-learn
  publishes (``FACES.checksum`` in ``sklearn/datasets/_olivetti_faces.py``) before ``scipy.io.loadmat`` reads it;
  pixels are then scaled exactly as scikit-learn does (minus the minimum, over the maximum).

scikit-learn's own cache ``scikit_learn_data/olivetti_py3.pkz`` is a joblib pickle, and loading it runs whatever
code it holds, so it is never opened: when it is all there is, loading stops with one line saying what to use.
``--download`` fetches ``olivettifaces.mat`` from scikit-learn's URL into ``<first root>/olivetti/`` (checked
against the published SHA-256 before it is kept) instead of letting scikit-learn write a pickle.

The data set has no official split, so trustkit fixes one: for every person, a ``RandomState(0)`` permutation
of their 10 images puts 8 in train and 2 in test (320 train / 80 test, every person in both). The split is
stratified and seeded, so every run and every user sees the same people in the same split. Pixels come as
float32 in [0, 1].
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from trustkit.data.base import DatasetSpec, ImageDataset, decode_image, fetch, read_checked, refuse_pickle
from trustkit.errors import DataNotFoundError

PNG_FOLDER = "olivetti"
SKLEARN_FOLDER = "scikit_learn_data"
MAT_FILE = "olivettifaces.mat"
# scikit-learn's FACES RemoteFileMetadata (sklearn/datasets/_olivetti_faces.py, unchanged since 0.20)
MAT_URL = "https://ndownloader.figshare.com/files/5976027"
MAT_SHA256 = "b612fb967f2dc77c9c62d3e1266e0c73d5fca46a4b8906c18e454d41af987794"
MAT_MAX_BYTES = 64 * 2**20  # the published file is about 1.4 MB; a larger download is not it
PICKLE_PATTERN = "olivetti*.pkz"  # scikit-learn's caches (olivetti_py3.pkz; olivetti.pkz before Python 3)
PEOPLE = 40
IMAGES_PER_PERSON = 10
SIDE = 64
TEST_PER_PERSON = 2  # 8 train / 2 test per person
SPLIT_SEED = 0  # changing it changes the split: never do that silently
SAFE_SOURCES = (f"the PNG folder {PNG_FOLDER}/<person 00-39>/<0-9>.png or the original {MAT_FILE} "
                f"(SHA-256 {MAT_SHA256}; --download fetches it)")


def split_indices(labels: np.ndarray, split: str) -> np.ndarray:
    """Indices of ``split`` ('train' or 'test'): per person, a seeded permutation; the first 2 are test."""
    rng = np.random.RandomState(SPLIT_SEED)
    chosen = []
    for person in range(int(labels.max()) + 1):
        members = np.flatnonzero(labels == person)
        order = members[rng.permutation(len(members))]
        chosen.append(order[:TEST_PER_PERSON] if split == "test" else order[TEST_PER_PERSON:])
    return np.sort(np.concatenate(chosen))


def png_path(folder: Path, index: int) -> Path:
    """The file of image ``index`` (scikit-learn's order: person ``index // 10``, photo ``index % 10``)."""
    return folder / f"{index // IMAGES_PER_PERSON:02d}" / f"{index % IMAGES_PER_PERSON}.png"


def find_png_folder(root: Path) -> Path | None:
    """``<root>/olivetti``, or ``root`` itself, when it holds a person folder ``00``."""
    for candidate in (root / PNG_FOLDER, root):
        if (candidate / "00").is_dir():
            return candidate
    return None


def find_mat(root: Path) -> Path | None:
    for candidate in (root / PNG_FOLDER / MAT_FILE, root / MAT_FILE, root / SKLEARN_FOLDER / MAT_FILE):
        if candidate.is_file():
            return candidate
    return None


def find_pickles(roots: list[Path]) -> list[Path]:
    """scikit-learn cache files where the old loader looked for them (never opened, only named in the refusal)."""
    return [p for root in roots for folder in (root / SKLEARN_FOLDER, root) if folder.is_dir()
            for p in sorted(folder.glob(PICKLE_PATTERN)) if p.is_file()]


def read_png_folder(folder: Path) -> np.ndarray:
    """The 400 faces, float32 N×64×64 in [0, 1], in scikit-learn's order (person-major, photo 0-9)."""
    fix = f"replace it with a complete copy ({PEOPLE} folders 00-{PEOPLE - 1} of 8-bit grey 64×64 PNGs 0-9.png)"
    faces = np.empty((PEOPLE * IMAGES_PER_PERSON, SIDE, SIDE), dtype=np.float32)
    for index in range(len(faces)):
        path = png_path(folder, index)
        if not path.is_file():
            raise DataNotFoundError(f"Olivetti PNG folder {folder} is incomplete: {path.relative_to(folder)} is "
                                    f"missing; {fix}")
        faces[index] = decode_image(path, (SIDE, SIDE), "L", fix)
    return faces / np.float32(255.0)


def read_mat(path: Path) -> np.ndarray:
    """The 400 faces from the published ``olivettifaces.mat``, scaled exactly as scikit-learn scales them."""
    from scipy.io import loadmat

    fix = f"replace it with the published {MAT_FILE} (or use --download, or the PNG folder {PNG_FOLDER}/)"
    data = read_checked(path, "sha256", MAT_SHA256, fix)  # before any parser sees the bytes
    try:
        faces = loadmat(io.BytesIO(data), variable_names=["faces"]).get("faces")
    except Exception as exc:  # scipy's MAT parser raises several kinds on a malformed file
        raise DataNotFoundError(f"cannot read {path} ({type(exc).__name__}: {exc}); {fix}") from None
    count = PEOPLE * IMAGES_PER_PERSON
    if not isinstance(faces, np.ndarray) or faces.shape != (SIDE * SIDE, count) or faces.dtype.kind not in "uif":
        shape = getattr(faces, "shape", None)
        raise DataNotFoundError(f"{path} has no {SIDE * SIDE}×{count} 'faces' array (found {shape}); {fix}")
    faces = np.float32(faces.T)  # as sklearn.datasets.fetch_olivetti_faces: MATLAB's column-major images
    faces -= faces.min()
    faces /= faces.max()
    return faces.reshape((count, SIDE, SIDE)).transpose(0, 2, 1)


def download_mat(target: Path) -> None:
    """Fetch ``olivettifaces.mat`` from scikit-learn's URL; keep it only if its SHA-256 is the published one."""
    import hashlib
    import urllib.request

    from trustkit.atomic import atomic_path

    with urllib.request.urlopen(MAT_URL, timeout=60) as response:  # noqa: S310 - a fixed https URL
        data = response.read(MAT_MAX_BYTES + 1)
    digest = hashlib.sha256(data).hexdigest()
    if digest != MAT_SHA256:
        raise OSError(f"the downloaded file's SHA-256 is {digest}, not the published {MAT_SHA256}")
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def read_faces(roots: list[Path], download: bool) -> np.ndarray:
    for root in roots:
        folder = find_png_folder(root)
        if folder is not None:
            return read_png_folder(folder)
        mat = find_mat(root)
        if mat is not None:
            return read_mat(mat)
    if download:
        target = roots[0] / PNG_FOLDER / MAT_FILE
        fetch("Olivetti faces", lambda: download_mat(target), target.parent)
        return read_mat(target)
    pickles = find_pickles(roots)
    if pickles:
        raise refuse_pickle(pickles[0], f"{SAFE_SOURCES} under --data-root")
    searched = ", ".join(f"{r / PNG_FOLDER}, {r / MAT_FILE}" for r in roots)
    raise DataNotFoundError(
        f"Olivetti faces not found (searched {searched}); pass --data-root DIR (or set TRUSTKIT_DATA) to a folder "
        f"holding {PNG_FOLDER}/<person 00-39>/<0-9>.png or {MAT_FILE}, or add --download when online")


def load(split: str, roots: list[Path], download: bool) -> ImageDataset:
    faces = read_faces(roots, download)
    labels = np.arange(len(faces), dtype=np.int64) // IMAGES_PER_PERSON  # scikit-learn's target: index // 10
    chosen = split_indices(labels, split)
    images = torch.from_numpy(np.ascontiguousarray(faces[chosen])).unsqueeze(1)  # float32 N×1×64×64
    return ImageDataset(images.clamp_(0, 1), torch.from_numpy(labels[chosen]), name="olivetti", split=split,
                        class_names=SPEC.class_names)


SPEC = DatasetSpec(
    name="olivetti",
    summary="Olivetti faces, 40 people × 10 grey 64×64 images, fixed per-person split 320 train / 80 test",
    shape=(1, 64, 64),
    class_names=tuple(f"person-{i:02d}" for i in range(PEOPLE)),
    mean=(0.5470,),  # measured on the 400 images
    std=(0.1725,),
    eps_linf=(1 / 255, 2 / 255, 4 / 255, 8 / 255),
    eps_l2=(0.25, 0.5, 1.0, 2.0),  # 64×64 grey: as many pixels as a 32×32 colour image, CIFAR-like budgets ×2
    loader=load,
    default_n=80,
)
