"""`fashion-mnist` and `mnist`: the four IDX files of each, gzipped or not.

IDX (LeCun's format): two zero bytes, a type code (0x08 = unsigned byte, ...), the number
of dimensions, then each dimension as a big-endian uint32, then the values, big-endian,
row-major. Both headers are validated (magic, type, rank, declared size against the bytes
present) and the image and label counts must agree. Records are numbered train (60,000)
first, then test (``t10k``, 10,000). x is (N, 1, 28, 28) float32 in [0, 1].

On Debian, ``apt-get install dataset-fashion-mnist`` puts Fashion-MNIST in
/usr/share/datasets/fashion-mnist, which is searched by default. ``download: true`` fetches
missing files from the public mirrors below (SHA-256 pinned).
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from miaudit.data.archive import read_maybe_gzip
from miaudit.data.base import Dataset, ExpectedFile, register_dataset
from miaudit.data.download import Remote, cache_dir, locate_or_fetch
from miaudit.errors import DataError

FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
MNIST_CLASSES = tuple(str(k) for k in range(10))

_IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

# (role, base name): the files of one dataset, train before test.
_PARTS = (
    ("train images", "train-images-idx3-ubyte"),
    ("train labels", "train-labels-idx1-ubyte"),
    ("test images", "t10k-images-idx3-ubyte"),
    ("test labels", "t10k-labels-idx1-ubyte"),
)


def _alternatives(base: str) -> tuple[str, ...]:
    """Gzipped as published, plain as extracted, and the dotted spelling some mirrors use."""
    dotted = base.replace("-idx", ".idx")
    return (f"{base}.gz", base, dotted, f"{dotted}.gz")


_GROUPS = tuple(_alternatives(base) for _, base in _PARTS)

# Fashion-MNIST: zalandoresearch's repository. SHA-256 as pinned by TensorFlow Datasets
# (url_checksums/fashion_mnist.txt) for the same files, whose MD5s are those in zalando's README.
_FASHION_URL = "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"
FASHION_REMOTES = tuple(
    Remote(f"{base}.gz", _FASHION_URL + f"{base}.gz", sha)
    for (_, base), sha in zip(
        _PARTS,
        (
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        ),
    )
)
# MNIST: the mirror torchvision uses (yann.lecun.com no longer serves the files reliably).
# SHA-256 as pinned by TensorFlow Datasets (url_checksums/mnist.txt) for the same files.
_MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
MNIST_REMOTES = tuple(
    Remote(f"{base}.gz", _MNIST_URL + f"{base}.gz", sha)
    for (_, base), sha in zip(
        _PARTS,
        (
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        ),
    )
)


class IdxParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    download: bool = Field(False, description="fetch missing files from the public mirror (SHA-256 checked)")
    timeout: float = Field(60.0, gt=0, description="seconds to wait for the server when downloading")


def parse_idx(data: bytes, where: str | Path, *, ndim: int) -> np.ndarray:
    """Decode one IDX file into an array of its declared shape and type.

    Parameters
    ----------
    data : the file's bytes, already decompressed.
    where : the file, for error messages.
    ndim : the rank expected (3 for images, 1 for labels).

    Examples
    --------
    >>> parse_idx(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9]), "labels", ndim=1)
    array([7, 8, 9], dtype=uint8)
    """
    if len(data) < 4 or data[0] or data[1]:
        raise DataError(
            f"{where}: magic {data[:4].hex() or 'missing'} is not an IDX header (expected 0000xxyy); "
            "the file is not an IDX file or is damaged: download it again"
        )
    code, rank = data[2], data[3]
    if code not in _IDX_TYPES:
        raise DataError(f"{where}: unknown IDX type code 0x{code:02x}; the file is damaged: download it again")
    if rank != ndim:
        raise DataError(f"{where}: IDX file has {rank} dimensions, expected {ndim}; is it the right file?")
    header = 4 + 4 * rank
    if len(data) < header:
        raise DataError(f"{where}: file ends inside its header ({len(data)} bytes); download it again")
    dims = struct.unpack(f">{rank}I", data[4:header])
    dtype = _IDX_TYPES[code]
    count = int(np.prod(dims, dtype=np.int64))
    expected, actual = count * dtype.itemsize, len(data) - header
    if actual != expected:
        raise DataError(
            f"{where}: header declares shape {dims} ({expected} data bytes) but the file holds {actual}; "
            "it is truncated or damaged: download it again"
        )
    return np.frombuffer(data, dtype=dtype, count=count, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def _read_split(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    images = parse_idx(read_maybe_gzip(images_path), images_path, ndim=3)
    labels = parse_idx(read_maybe_gzip(labels_path), labels_path, ndim=1)
    if images.dtype != np.uint8 or labels.dtype != np.uint8:
        raise DataError(
            f"{images_path}, {labels_path}: IDX types {images.dtype}/{labels.dtype}; expected unsigned bytes"
        )
    if len(images) != len(labels):
        raise DataError(
            f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels; "
            "they must come from the same release"
        )
    return images, labels


def load_idx_dataset(
    name: str,
    params: IdxParams,
    data_dir: Path | None,
    default_dirs: tuple[str, ...],
    remotes: tuple[Remote, ...],
    class_names: tuple[str, ...],
) -> Dataset:
    """Train then test images and labels of an MNIST-like dataset."""
    paths = locate_or_fetch(
        name, data_dir, _GROUPS, default_dirs, remotes, download=params.download, timeout=params.timeout
    )
    train_x, train_y = _read_split(paths[0], paths[1])
    test_x, test_y = _read_split(paths[2], paths[3])
    if train_x.shape[1:] != test_x.shape[1:]:
        raise DataError(
            f"{paths[0]} holds {train_x.shape[1:]} images but {paths[2]} holds {test_x.shape[1:]}; "
            "they must come from the same dataset"
        )
    y = np.concatenate([train_y, test_y]).astype(np.int64)
    n_classes = len(class_names)
    if y.max() >= n_classes:
        bad = int(np.flatnonzero(y >= n_classes)[0])
        where = paths[1] if bad < len(train_y) else paths[3]
        index = bad if bad < len(train_y) else bad - len(train_y)
        raise DataError(f"{where}: label {int(y[bad])} at record {index} is outside 0..{n_classes - 1}")
    x = np.concatenate([train_x, test_x])[:, None].astype(np.float32)
    x /= 255.0
    return Dataset(
        name=name,
        x=x,
        y=y,
        ids=np.arange(len(y), dtype=np.int64),
        kind="image",
        class_names=class_names,
        source=str(paths[0].parent),
    )


def _files() -> tuple[ExpectedFile, ...]:
    return tuple(ExpectedFile(group, f"{role} (IDX, gzipped or not)") for (role, _), group in zip(_PARTS, _GROUPS))


FASHION_DIRS = ("/usr/share/datasets/fashion-mnist", cache_dir("fashion-mnist"))
MNIST_DIRS = ("/usr/share/datasets/mnist", cache_dir("mnist"))


@register_dataset(
    "fashion-mnist",
    kind="image",
    description="Fashion-MNIST: 70,000 28x28 greyscale clothing images, 10 classes (IDX files)",
    params=IdxParams,
    files=_files(),
    default_dirs=FASHION_DIRS,
    url=_FASHION_URL,
)
def load_fashion_mnist(params: IdxParams, data_dir: Path | None, seed: int) -> Dataset:
    """Fashion-MNIST, 60,000 train then 10,000 test images, x (N, 1, 28, 28) in [0, 1]."""
    return load_idx_dataset("fashion-mnist", params, data_dir, FASHION_DIRS, FASHION_REMOTES, FASHION_CLASSES)


@register_dataset(
    "mnist",
    kind="image",
    description="MNIST: 70,000 28x28 greyscale handwritten digits, 10 classes (IDX files)",
    params=IdxParams,
    files=_files(),
    default_dirs=MNIST_DIRS,
    url=_MNIST_URL,
)
def load_mnist(params: IdxParams, data_dir: Path | None, seed: int) -> Dataset:
    """MNIST, 60,000 train then 10,000 test images, x (N, 1, 28, 28) in [0, 1]."""
    return load_idx_dataset("mnist", params, data_dir, MNIST_DIRS, MNIST_REMOTES, MNIST_CLASSES)
