"""Image files -> the ``uint8 [N, C, H, W]`` tensor the trainer uses, decoded in parallel.

:func:`decode_files` reads every file once in a thread pool (``torchvision.io.decode_image``
for PNG, JPEG, WebP and GIF; PIL through torchvision's ``pil_to_tensor`` for BMP and any other
format PIL opens), converts it to 1 or 3 channels (alpha dropped; 16-bit scaled to 8-bit; grey
from colour by ``torchvision.transforms.v2.functional.rgb_to_grayscale``), and, with a target
``size``, resizes the shorter side to it (bilinear, antialiased) and centre-crops a square.
The threads run the decoders' C code without the GIL. :func:`file_digests` gives the SHA-256 of
each file's bytes (the disk cache's key: :mod:`deca_tune.data.image.folder`).

Every failure names the file: :class:`ImageFileError` (unreadable, truncated, not an image,
images of different sizes without a target size).
"""
from __future__ import annotations

import hashlib
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import torch

# torchvision 0.29 announces that TorchCodec will take over image decoding; until then its
# decoders are the ones we have (TorchCodec is not a dependency). Said once per call otherwise.
warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision",
                        category=DeprecationWarning)

#: the file name extensions read as images (case-insensitive)
EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
#: modes PIL reports for greyscale images (the ``channels: auto`` rule)
GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F", "La"})


class ImageFileError(ValueError):
    """An image file that cannot be used; the message names the file."""


def default_workers() -> int:
    """Decoding threads: the CPUs this process may use (at most 16)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n = os.cpu_count() or 1
    return max(1, min(16, n))


def is_grey(path: Path) -> bool:
    """Whether ``path`` holds a greyscale image (PIL reads only the header)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.mode == "P":  # a palette of greys only is grey
                palette = im.getpalette() or []
                rgb = [palette[i:i + 3] for i in range(0, len(palette), 3)]
                return all(r == g == b for r, g, b in rgb)
            return im.mode in GREY_MODES
    except Exception as exc:  # noqa: BLE001 - PIL raises many kinds; all mean "not an image"
        raise ImageFileError(f"{path}: not a readable image ({type(exc).__name__}: {exc})") from None


def _decode_pil(path: Path, channels: int) -> torch.Tensor:
    from PIL import Image
    from torchvision.transforms.v2.functional import pil_to_tensor

    with Image.open(path) as im:
        im.load()
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit grey: keep the high byte
            im = im.point(lambda v: v / 256).convert("L")
        return pil_to_tensor(im.convert("L" if channels == 1 else "RGB"))


def decode_file(path: str | Path, channels: int, size: int | None = None) -> torch.Tensor:
    """One image file as ``uint8 [channels, H, W]`` (``[channels, size, size]`` with ``size``)."""
    from torchvision.io import ImageReadMode, decode_image, read_file
    from torchvision.transforms.v2 import functional as TF

    path = Path(path)
    try:
        data = read_file(str(path))
    except (RuntimeError, OSError) as exc:
        raise ImageFileError(f"{path}: cannot read the file ({exc})") from None
    if data.numel() == 0:
        raise ImageFileError(f"{path}: the file is empty")
    mode = ImageReadMode.GRAY if channels == 1 else ImageReadMode.RGB
    if channels == 1 and bytes(data[8:12].tolist()) == b"WEBP":  # no grey decoding: converted below
        mode = ImageReadMode.RGB
    try:
        img = decode_image(data, mode=mode)
    except RuntimeError as first:
        try:  # BMP and whatever else torchvision's decoders do not take
            img = _decode_pil(path, channels)
        except Exception as exc:  # noqa: BLE001 - PIL raises many kinds; all mean "unreadable"
            why = str(first).strip().splitlines()[-1] if "Unsupported image file" not in str(first) else str(exc)
            raise ImageFileError(f"{path}: not a readable image, truncated or corrupt ({why})") from None
    if img.dtype == torch.uint16:
        img = (img.to(torch.int32) >> 8).to(torch.uint8)
    elif img.dtype != torch.uint8:
        img = TF.to_dtype(img, torch.uint8, scale=True)
    c = img.shape[0]
    if c in (2, 4):  # grey + alpha, RGBA (WebP keeps its own colour space): drop alpha
        img, c = img[:c - 1], c - 1
    if c != channels:
        img = TF.rgb_to_grayscale(img) if channels == 1 else img.expand(3, -1, -1)
    if size is not None and tuple(img.shape[-2:]) != (size, size):
        img = TF.center_crop(TF.resize(img, size, antialias=True), [size, size])
    return img.contiguous()


def decode_files(paths: Sequence[str | Path], channels: int, size: int | None = None,
                 workers: int | None = None) -> torch.Tensor:
    """Every file of ``paths`` as one ``uint8 [N, channels, H, W]`` tensor, in that order.

    Without ``size`` every image must have the same height and width (else the error names two
    files of different sizes). ``workers``: decoding threads (default :func:`default_workers`).
    """
    if channels not in (1, 3):
        raise ValueError(f"channels={channels}; choose 1 or 3")
    if not paths:
        return torch.zeros((0, channels, size or 1, size or 1), dtype=torch.uint8)
    workers = workers or default_workers()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        images = list(pool.map(lambda p: decode_file(p, channels, size), paths))
    first = tuple(images[0].shape)
    for path, img in zip(paths, images):
        if tuple(img.shape) != first:
            raise ImageFileError(f"{path} is {img.shape[-2]}x{img.shape[-1]} but {paths[0]} is "
                                 f"{first[-2]}x{first[-1]}; set option image_size to resize/crop "
                                 "every image to one square size")
    return torch.stack(images)


def _digest(path: str | Path) -> str:
    try:
        with open(path, "rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError as exc:
        raise ImageFileError(f"{path}: cannot read the file ({exc})") from None


def file_digests(paths: Sequence[str | Path], workers: int | None = None) -> list[str]:
    """The SHA-256 of every file's bytes, in order (read in a thread pool)."""
    with ThreadPoolExecutor(max_workers=workers or default_workers()) as pool:
        return list(pool.map(_digest, paths))
