"""The training loader's images/s per core: ours against the loader before it and torchvision's transforms.

    python benchmarks/loader.py [--size 224] [--batch-size 64] [--rounds 3] [--plot docs/loader.png]

Full-size JPEGs of ``../shared``: imagenet-sample's 500 ImageNet images (~470x380, ~100 KB each) and COCO128's 256
images (640x480). Each pipeline is fed by the trainer's sampler through a ``DataLoader`` as training runs it:

- **training**: a random resized crop to ``--size`` (area 0.08-1, aspect 3/4-4/3) and a random flip.
  ``ours`` is the library's (the box drawn from the header, JPEGs decoded by libjpeg-turbo into NumPy, at 1/2, 1/4
  or 1/8 scale when the box allows, resized on uint8 pixels; normalised on the device, so its line without the
  normalisation is what a GPU run's loader does, and ``+ normalise`` adds that step on the CPU); ``before`` is the
  loader as it was until this script (PIL decodes at full size, resizes, flips, normalises to float in the worker),
  rebuilt here from the same crop boxes; ``torchvision`` is ``RandomResizedCrop`` + ``RandomHorizontalFlip`` +
  ``ToTensor`` + ``Normalize`` on PIL images, the usual PyTorch recipe.
  ``from tar shards`` is ours reading the same files out of tar shards (``mobilenet shard``'s layout) by offset.
- **evaluation**: resize the short side to 256, centre crop 224 and normalise: ours (``LabelledImages``) and
  torchvision's ``Resize`` + ``CenterCrop`` + ``ToTensor`` + ``Normalize``.

"per core" is ``--workers 0`` (the main process alone, one thread); the 2-worker lines are what a 2-core machine
gets, in worker processes (``--loader processes``, the default) and, for ours, in 2 threads of the main process
(``--loader threads``: libjpeg-turbo and the resize release the GIL). Rounds alternate the pipelines; the median
round counts.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for the test-only torchvision shim
from benchmarks.machine import HelpFormatter, cpu_name
from benchmarks.references import import_torchvision

from mobilenet.classification.augment import Augmentation, AugmentedImages, crop_box
from mobilenet.classification.data import LabelledImages, collate
from mobilenet.data.images import IMAGE_SUFFIXES, load_image, normalize
from mobilenet.data.tars import ShardWriter, shard_samples
from mobilenet.nn.preprocessing import Preprocessing
from mobilenet.training.loading import threaded_batches
from mobilenet.training.sampling import ShardedSampler

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MOBILENET_SHARED", ROOT.parent / "shared")) / "data"
SETS = {"imagenet-sample": "imagenet-sample", "COCO128": "detection/coco128/images"}


class Before(AugmentedImages):
    """The training loader until now: PIL decodes at full size and resizes the same box; float out of the worker."""

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        index, seed = key
        source, label = self.images.samples[index]
        image, rng, size = load_image(source), np.random.default_rng(seed), self.images.pre.input_size
        image = image.resize((size, size), Image.Resampling.BILINEAR, box=crop_box(*image.size, self.augmentation, rng))
        if self.augmentation.hflip and rng.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        pixels, pre = torch.from_numpy(np.asarray(image, dtype=np.float32)).permute(2, 0, 1), self.images.pre
        mean, std = torch.tensor(pre.mean).view(-1, 1, 1), torch.tensor(pre.std).view(-1, 1, 1)
        return (pixels / 255 - mean) / std, label  # normalize() as it was: a new tensor at each step


class Torchvision(Dataset):
    """torchvision's transforms on PIL images, as ``ImageFolder`` loads them; indexed as the trainer indexes."""

    def __init__(self, samples: list, transform: Callable) -> None:
        self.samples, self.transform = samples, transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: tuple[int, int] | int) -> tuple[torch.Tensor, int]:
        index = key[0] if isinstance(key, tuple) else key
        source, label = self.samples[index]
        with Image.open(source) as image:
            return self.transform(image.convert("RGB")), label


def rate(dataset: Dataset, batch: int, workers: int, sampled: bool, normalise: Preprocessing | None = None) -> float:
    """Images/s of one pass over ``dataset`` in batches, through a DataLoader as the trainer (or evaluation) runs it."""
    sampler = ShardedSampler(len(dataset), batch, seed=0) if sampled else None
    loader = DataLoader(dataset, batch_size=batch, sampler=sampler, collate_fn=collate, num_workers=workers)
    start, count = time.perf_counter(), 0
    for images, _, _ in loader:
        if normalise is not None:
            images = normalize(images, normalise)
        count += len(images)
    return count / (time.perf_counter() - start)


def threaded_rate(dataset: Dataset, batch: int, threads: int) -> float:
    """Images/s of the same pass loaded by a pool of threads in the main process (the trainer's ``--loader
    threads``)."""
    start, count = time.perf_counter(), 0
    for images, _, _ in threaded_batches(dataset, ShardedSampler(len(dataset), batch, seed=0), batch, collate, threads):
        count += len(images)
    return count / (time.perf_counter() - start)


def sharded(samples: list, folder: Path) -> list:
    """The same images in tar shards of 1,000 under ``folder``, as (member, label) samples."""
    with ShardWriter(folder) as writer:
        for number, (path, _) in enumerate(samples):
            writer.add(f"{number:08d}", {"jpg": Path(path).read_bytes(), "cls": b"0"})
    return [(files["jpg"], 0) for _, files in shard_samples(writer.written)]


def pipelines(samples: list, size: int, batch: int, scratch: Path) -> dict[str, Callable[[], float]]:
    transforms = import_torchvision().transforms
    pre = Preprocessing(input_size=size)
    images = LabelledImages(samples, ["any"], pre)
    in_shards = AugmentedImages(LabelledImages(sharded(samples, scratch), ["any"], pre), Augmentation())
    normalise = transforms.Normalize(pre.mean, pre.std)
    train_tv = transforms.Compose(
        [transforms.RandomResizedCrop(size), transforms.RandomHorizontalFlip(), transforms.ToTensor(), normalise]
    )
    eval_tv = transforms.Compose(
        [transforms.Resize(pre.resize_size), transforms.CenterCrop(size), transforms.ToTensor(), normalise]
    )
    ours, before = AugmentedImages(images, Augmentation()), Before(images, Augmentation())
    return {
        "train: before, per core": lambda: rate(before, batch, 0, True),
        "train: torchvision, per core": lambda: rate(Torchvision(samples, train_tv), batch, 0, True),
        "train: ours, per core": lambda: rate(ours, batch, 0, True),
        "train: ours + normalise, per core": lambda: rate(ours, batch, 0, True, pre),
        "train: ours, from tar shards, per core": lambda: rate(in_shards, batch, 0, True),
        "train: before, 2 workers": lambda: rate(before, batch, 2, True),
        "train: ours, 2 workers": lambda: rate(ours, batch, 2, True),
        "train: ours, 2 threads": lambda: threaded_rate(ours, batch, 2),
        "eval: torchvision, per core": lambda: rate(Torchvision(samples, eval_tv), batch, 0, False),
        "eval: ours, per core": lambda: rate(images, batch, 0, False),
    }


def plot(results: dict[str, dict[str, float]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [name for name in next(iter(results.values())) if "per core" in name]
    figure, axis = plt.subplots(figsize=(9, 4))
    height = 0.8 / len(results)
    for offset, (dataset, rates) in enumerate(results.items()):
        rows = np.arange(len(names)) + offset * height
        axis.barh(rows, [rates[name] for name in names], height, label=dataset)
    labels = [name.replace(", per core", "") for name in names]
    axis.set_yticks(np.arange(len(names)) + height * (len(results) - 1) / 2, labels)
    axis.invert_yaxis()
    axis.set_xlabel("images/s on one core (224 crops)")
    axis.set_title(f"Training and evaluation loaders on {cpu_name()}")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--plot", help="a PNG of the per-core rates")
    args = parser.parse_args()
    torch.set_num_threads(1)  # one core: the per-core figures, and no oversubscription beside the workers
    results = {}
    print(f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}")
    for name, folder in SETS.items():
        files = sorted(p for p in (SHARED / folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            sys.exit(f"no images under {SHARED / folder}: this benchmark reads ../shared (or $MOBILENET_SHARED)")
        scratch = Path(tempfile.mkdtemp(prefix="loader-shards-"))
        runs = pipelines([(str(f), 0) for f in files], args.size, args.batch_size, scratch / "shards")
        seen: dict[str, list[float]] = {key: [] for key in runs}
        for _ in range(args.rounds):
            for key, run in runs.items():
                seen[key].append(run())
        shutil.rmtree(scratch)
        results[name] = {key: statistics.median(values) for key, values in seen.items()}
        print(f"\n{name}: {len(files)} images, median of {args.rounds} rounds")
        for key, value in results[name].items():
            base = results[name]["train: before, 2 workers" if "2 " in key else "train: before, per core"]
            ratio = f"{value / base:5.2f}x before" if key.startswith("train") else ""
            print(f"  {key:40s} {value:7.0f} images/s  {ratio}")
    if args.plot:
        plot(results, args.plot)
        print(f"\nplot: {args.plot}")


if __name__ == "__main__":
    main()
