"""Images in: decoding any image a user holds, the evaluation preprocessing of a set of weights, and batches."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from mobilenet.data.subsets import spread
from mobilenet.data.tables import Row, Table, is_table
from mobilenet.data.tars import Member, is_shards, shard_paths, shard_samples
from mobilenet.nn.preprocessing import Preprocessing

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
# Preprocessing.interpolation -> PIL's filter; PIL's resize antialiases as torchvision's Resize does on PIL images.
RESAMPLING = {
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "nearest": Image.Resampling.NEAREST,
}


@dataclass(frozen=True)
class Encoded:
    """An encoded image held in memory under a name (a Ray batch's bytes and their path): read as its file would be."""

    name: str
    data: bytes

    def read_bytes(self) -> bytes:
        return self.data

    def __str__(self) -> str:
        return self.name


# An image read by its own read_bytes() and named by its str(): a shard's member, a table's row, named bytes.
Stored = Member | Row | Encoded
# One image as users hold it: a file path, an image stored in shards or a table, the bytes of an encoded file (JPEG,
# PNG, ...), a PIL image, or RGB pixels 0..255 as a uint8 NumPy array (H, W, 3), (H, W, 4) or (H, W) or a uint8
# tensor (3, H, W) or (1, H, W).
# A float tensor (C, H, W) is the model's input, already preprocessed (as image_batch takes a float batch).
AnyImage = str | Path | bytes | Stored | Image.Image | np.ndarray | torch.Tensor
# One image or several: a list or tuple of them, where an (N, ...) array or tensor counts as N images.
AnyImages = AnyImage | Sequence[AnyImage]


@contextmanager
def opened_image(source: str | Path | bytes | Stored, max_pixels: int | None = None) -> Iterator[Image.Image]:
    """An image file, its bytes, a shard's member or a table's row, with only its header read: its size and format
    are known and its pixels are decoded on ``load()`` (after a JPEG's ``draft`` if asked, at a reduced scale);
    closed on leaving. Any failure to read it, there or in the block, is a clear error.

    ``max_pixels`` refuses a larger image from its header, before its pixels are decoded (a server's uploads); without
    it, PIL's own limit holds."""
    what = f"of {len(source)} bytes" if isinstance(source, bytes) else source
    if isinstance(source, str | Path) and Path(source).is_dir():
        held = "no image files" if not image_files_under(Path(source)) else "image files: pass those"
        raise ValueError(f"{source} is a folder, not an image, and it holds {held}")
    try:
        with warnings.catch_warnings():  # large but decodable: read it, without PIL's warning on the terminal
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            data = source if isinstance(source, str | Path | bytes) else source.read_bytes()
            with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as image:
                if max_pixels is not None and image.width * image.height > max_pixels:
                    raise Image.DecompressionBombError(f"{image.width}x{image.height}")
                yield image
    except FileNotFoundError:
        raise FileNotFoundError(f"image not found: {source}") from None
    except Image.DecompressionBombError:
        limit = 2 * Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
        raise ValueError(
            f"cannot read image {what}: it has more than {limit:,} pixels, more than is decoded safely (a "
            "decompression bomb, or a huge scan): downscale it first"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        # PIL's own words would name the in-memory buffer of bytes by its address
        reason = "no image format that PIL reads" if isinstance(error, UnidentifiedImageError) else error
        raise ValueError(f"cannot read image {what}: {reason} (is the file a complete JPEG/PNG?)") from None


def image_members(sample: dict[str, Member]) -> list[Member]:
    """The files of a shard's sample (by type: ``{"jpg": Member, "cls": Member}``) that are images, by extension."""
    return [member for kind, member in sample.items() if f".{kind}" in IMAGE_SUFFIXES]


def labelled_members(shards: Sequence[Path], label: str, task: str) -> Iterator[tuple[Member, Member]]:
    """(image, its ``label`` member: ``"cls"``, ``"seg.png"``, ``"json"``) of every sample of the ``task``'s
    ``shards``, in order; a sample without either is an error in one line that names it and its shard."""
    for key, files in shard_samples(shards):
        image = next(iter(image_members(files)), None)
        if image is None or label not in files:
            has, shard = ", ".join(sorted(files)), next(iter(files.values())).shard
            raise ValueError(f"sample {key} of {shard} has {has}: a {task} shard holds an image and a .{label}")
        yield image, files[label]


def load_image(source: str | Path | bytes | Stored, max_pixels: int | None = None) -> Image.Image:
    """An image file, its bytes, a shard's member or a table's row, decoded as RGB (grayscale, palette, CMYK, alpha
    are converted), or a clear error (see :func:`opened_image`)."""
    with opened_image(source, max_pixels) as image:
        image.load()
        return image.convert("RGB")


def each_file(paths: Sequence[str | Stored], describe: Callable[[str, Image.Image], dict]) -> list[dict]:
    """``describe(path, image)`` of each image file, in order; an unreadable one's result is its ``"error"``, and
    the others still run (what ``mobilenet segment`` and ``detect`` print, one result per file)."""
    results = []
    for path in paths:
        try:
            image = load_image(path)
        except (OSError, ValueError) as error:
            results.append({"image": str(path), "error": str(error)})
            continue
        results.append(describe(str(path), image))
    return results


def as_rgb_image(image: AnyImage) -> Image.Image:
    """One image (any kind but a float tensor) as an RGB PIL image: decoded, or made from its pixels."""
    if isinstance(image, str | Path | bytes | Stored):
        return load_image(image)
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, torch.Tensor):
        if image.is_floating_point():
            raise ValueError("a float tensor is taken as already preprocessed: pass uint8 pixels 0..255 to preprocess")
        if image.dim() != 3 or image.shape[0] not in (1, 3):
            raise ValueError(f"expected a uint8 image tensor of shape (3, H, W) or (1, H, W), got {tuple(image.shape)}")
        image = image.detach().cpu().permute(1, 2, 0).squeeze(2).numpy()  # CHW -> HWC (one channel: HW)
    if isinstance(image, np.ndarray):
        channels_last = image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (3, 4))
        if image.dtype != np.uint8 or not channels_last or image.size == 0:
            raise ValueError(
                f"expected uint8 pixels of shape (H, W, 3), (H, W, 4) or (H, W), got {image.dtype} {image.shape}"
            )
        return Image.fromarray(np.ascontiguousarray(image)).convert("RGB")
    raise TypeError(
        f"cannot take a {type(image).__name__} as an image: pass a path, encoded bytes, a PIL image, "
        "a uint8 NumPy array or a tensor"
    )


def resize_and_crop(image: Image.Image, pre: Preprocessing) -> Image.Image:
    """The geometric part of the ``"short_side"`` preprocessing: short side to ``resize_size`` (with its
    interpolation), center crop. TF-slim's ``"central_fraction"`` resize gives float pixels: see
    :func:`preprocess_rgb`."""
    if pre.resize != "short_side":
        raise ValueError(f"resize {pre.resize!r} gives float pixels, not an image: use preprocess_rgb")
    width, height = image.size
    scale = pre.resize_size / min(width, height)
    size = (max(pre.input_size, round(width * scale)), max(pre.input_size, round(height * scale)))
    image = image.resize(size, RESAMPLING[pre.interpolation])
    left, top = (size[0] - pre.input_size) // 2, (size[1] - pre.input_size) // 2
    return image.crop((left, top, left + pre.input_size, top + pre.input_size))


def central_crop_box(width: int, height: int, fraction: float) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of ``tf.image.central_crop(image, fraction)``: each side loses
    ``int((size - size * fraction) / 2)`` pixels (truncated), so that the crop stays centered."""
    left, top = int((width - width * fraction) / 2), int((height - height * fraction) / 2)
    return left, top, width - left, height - top


def legacy_bilinear_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where TF1's bilinear resize (align_corners=False, no half-pixel centers) reads along one axis: output ``i``
    sits at input ``i * in_size / out_size``, between its floor and ceil (clamped), with the fraction as weight;
    in float32, as TensorFlow computes it."""
    where = np.arange(out_size, dtype=np.float32) * (np.float32(in_size) / np.float32(out_size))
    lower = np.floor(where)
    upper = np.minimum(np.ceil(where), in_size - 1)
    return lower.astype(np.intp), upper.astype(np.intp), where - lower


def resize_bilinear_tf1(pixels: np.ndarray, size: int) -> np.ndarray:
    """(H, W, C) pixels resized to (size, size, C) float32 as TF1's ``tf.image.resize_bilinear`` (TF-slim's
    evaluation) does: no antialiasing, output i sampled at input i * in / out (the legacy coordinates, not
    half-pixel centers), no rounding back to uint8.

    What differs from TF-slim's: float32 rounding only, as TF resizes [0, 1] pixels and we 0..255 (about 1e-5 of
    a level; LiteRT's kernel in this mode gives our floats exactly, tests/classification checks it), and the JPEG
    decoding before it: TF's libjpeg build may round a few pixels otherwise than PIL's.
    """
    rows_lo, rows_hi, dy = legacy_bilinear_taps(pixels.shape[0], size)
    cols_lo, cols_hi, dx = legacy_bilinear_taps(pixels.shape[1], size)
    image = pixels.astype(np.float32)

    def along_width(rows: np.ndarray) -> np.ndarray:  # first along the width, then the height, as TF does
        left, right = rows[:, cols_lo], rows[:, cols_hi]
        return left + (right - left) * dx[None, :, None]

    top, bottom = along_width(image[rows_lo]), along_width(image[rows_hi])
    return top + (bottom - top) * dy[:, None, None]


def normalize(pixels: torch.Tensor, pre: Preprocessing) -> torch.Tensor:
    """Pixels 0..255, (C, H, W) or a batch (N, C, H, W) of any dtype, as a model's float input: [0, 1], then
    the weights' mean and std per channel."""
    mean = torch.tensor(pre.mean, dtype=torch.float32, device=pixels.device).view(-1, 1, 1)
    std = torch.tensor(pre.std, dtype=torch.float32, device=pixels.device).view(-1, 1, 1)
    # One new tensor, then in place (the same arithmetic): each new batch-sized tensor costs more than the arithmetic.
    return pixels.to(torch.float32, copy=True).div_(255).sub_(mean).div_(std)


def unnormalize(inputs: torch.Tensor, pre: Preprocessing) -> torch.Tensor:
    """A model's float input back to pixels 0..255 (float): what :func:`normalize` undoes."""
    mean = torch.tensor(pre.mean, dtype=torch.float32, device=inputs.device).view(-1, 1, 1)
    std = torch.tensor(pre.std, dtype=torch.float32, device=inputs.device).view(-1, 1, 1)
    return (inputs * std + mean) * 255


def to_tensor(image: Image.Image, pre: Preprocessing) -> torch.Tensor:
    """An RGB image, already resized and cropped, as a normalized (3, H, W) float tensor."""
    return normalize(torch.from_numpy(np.asarray(image, dtype=np.float32)).permute(2, 0, 1), pre)


def preprocess_rgb(image: Image.Image, pre: Preprocessing) -> torch.Tensor:
    """An RGB image as the normalized (3, H, W) input of a model with this preprocessing, resized as it says."""
    if pre.resize == "central_fraction":
        crop = np.asarray(image.crop(central_crop_box(*image.size, pre.crop_pct)))
        return normalize(torch.from_numpy(resize_bilinear_tf1(crop, pre.input_size)).permute(2, 0, 1), pre)
    return to_tensor(resize_and_crop(image, pre), pre)


def preprocess(image: AnyImage, pre: Preprocessing) -> torch.Tensor:
    """One image (any kind but a float tensor) as the (3, H, W) tensor that a model with this preprocessing expects."""
    return preprocess_rgb(as_rgb_image(image), pre)


@dataclass(frozen=True)
class ImageTransform:
    """A :class:`Preprocessing` as a callable, like a torchvision transform: one image in, the model's input out.

    ``ImageTransform(model.preprocessing)(image)`` is ``preprocess(image, model.preprocessing)``. The record
    itself stays plain data: :mod:`mobilenet.nn` imports nothing of the package, so it cannot call this module.
    """

    pre: Preprocessing

    def __call__(self, image: AnyImage) -> torch.Tensor:
        return preprocess(image, self.pre)


def each_image(images: AnyImages) -> list[AnyImage]:
    """One image or several as a flat list: a list's items in order, an (N, ...) array or tensor as N images."""
    if isinstance(images, list | tuple):
        return [single for item in images for single in each_image(item)]
    if isinstance(images, np.ndarray | torch.Tensor) and images.ndim == 4:
        return list(images)
    return [images]


def model_input(image: AnyImage, pre: Preprocessing) -> torch.Tensor:
    """One image as the model's (C, H, W) input: preprocessed, or a float tensor as it is (it already is the input)."""
    if isinstance(image, torch.Tensor) and image.is_floating_point():
        expected = (len(pre.mean), pre.input_size, pre.input_size)
        if tuple(image.shape) != expected:
            raise ValueError(
                f"a float tensor is taken as preprocessed: expected shape {expected}, got {tuple(image.shape)}"
            )
        return image
    return preprocess(image, pre)


# A tensor batch, one image file, a folder of images (searched recursively) or a list of files.
ImageSource = torch.Tensor | str | Path | Sequence[str | Path]


def image_files_under(folder: Path) -> list[str]:
    """The image files under ``folder`` (by their extensions), sorted."""
    return sorted(str(p) for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def image_files(sources: Sequence[str | Path]) -> list[str | Stored]:
    """The images that paths name: a folder gives every image file under it (sorted), shards every member with an
    image's extension, a Hugging Face dataset its image column; anything else, a folder of no images included, is
    kept as it is, to be reported as unreadable when it is read."""
    files: list[str | Stored] = []
    for source in sources:
        if is_table(source):
            table = Table(source)
            files += table.rows(table.image_column())
        elif is_shards(source):
            files += [image for _, sample in shard_samples(shard_paths(source)) for image in image_members(sample)]
        else:
            found = image_files_under(Path(source)) if Path(source).is_dir() else []
            files += found or [str(source)]
    return files


def image_batch(source: ImageSource, preprocessing: Preprocessing, limit: int | None = None) -> torch.Tensor:
    """Images as one (N, C, H, W) float batch, preprocessed for the model; at most ``limit`` of them.

    A folder contributes every image under it; when it holds more than ``limit``, images are taken
    evenly through the sorted list, so that a class-per-folder dataset gives every class a share.
    """
    if isinstance(source, torch.Tensor):
        if source.dim() != 4:
            raise ValueError(f"expected an image batch of shape (N, C, H, W), got {tuple(source.shape)}")
        return source[:limit].float()
    paths = image_files([source] if isinstance(source, str | Path) else source)
    if isinstance(source, str | Path) and Path(source).is_dir() and paths == [str(source)]:
        raise ValueError(f"no image files under {source}: pass a folder of images")
    if not paths:
        raise ValueError("no images given: pass a folder, image files or a tensor batch")
    if limit is not None:
        paths = [paths[i] for i in spread(limit, len(paths))]
    return torch.stack([preprocess(p, preprocessing) for p in paths])
