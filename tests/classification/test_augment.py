"""The training loader: crops drawn as torchvision draws them, decoded no larger than they need, and the pixels of
PIL's decoding and resize (the loader it replaced, and what torchvision's transforms give)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from benchmarks.references import import_torchvision
from PIL import Image
from scipy import stats

from mobilenet.classification.augment import Augmentation, AugmentedImages, crop_box
from mobilenet.classification.data import LabelledImages, collate
from mobilenet.classification.task import ClassificationTask
from mobilenet.data.crops import crop_resized, decode_for, reduction
from mobilenet.data.images import load_image
from mobilenet.nn.preprocessing import Preprocessing
from tests.helpers.data import shared_path


def scene(width: int, height: int) -> Image.Image:
    """A smooth photograph-like picture (gradients and soft discs) with texture, the same every call."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    red = 128 + 100 * np.sin(x / 37) * np.cos(y / 53)
    green = 255 * x / width
    blue = 200 * np.exp(-((x - width / 3) ** 2 + (y - height / 2) ** 2) / (0.1 * width * height))
    noise = np.random.default_rng(0).normal(0, 6, (height, width, 3))
    pixels = np.stack([red, green, blue], axis=2) + noise
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def jpeg(tmp_path, image: Image.Image, name: str = "scene.jpg", **options) -> str:
    path = tmp_path / name
    image.save(path, quality=92, **options)
    return str(path)


@pytest.mark.parametrize(("width", "height"), [(500, 375), (640, 480), (160, 128)])
def test_crop_boxes_are_drawn_as_torchvision_draws_them(width: int, height: int) -> None:
    params = import_torchvision().transforms.RandomResizedCrop.get_params
    torch.manual_seed(0)
    theirs = [params(torch.empty(3, height, width), [0.08, 1.0], [3 / 4, 4 / 3]) for _ in range(3000)]
    rng = np.random.default_rng(0)
    ours = [crop_box(width, height, Augmentation(), rng) for _ in range(3000)]
    our_w, our_h = (np.array([box[2] - box[0] for box in ours]), np.array([box[3] - box[1] for box in ours]))
    their_w, their_h = np.array([w for _, _, _, w in theirs]), np.array([h for _, _, h, _ in theirs])
    # The area's share, the aspect and where the box sits: each drawn from the same distribution (two-sample KS).
    for mine, reference in [
        (our_w * our_h / (width * height), their_w * their_h / (width * height)),
        (np.log(our_w / our_h), np.log(their_w / their_h)),
        (np.array([box[0] for box in ours]) / width, np.array([j for _, j, _, _ in theirs]) / width),
    ]:
        assert stats.ks_2samp(mine, reference).pvalue > 1e-3
    assert all(0 <= box[0] < box[2] <= width and 0 <= box[1] < box[3] <= height for box in ours)


def test_an_image_no_box_fits_falls_back_to_torchvisions_central_crop() -> None:
    params = import_torchvision().transforms.RandomResizedCrop.get_params
    top, left, height, width = params(torch.empty(3, 50, 1000), [0.08, 1.0], [3 / 4, 4 / 3])
    assert crop_box(1000, 50, Augmentation(), np.random.default_rng(0)) == (left, top, left + width, top + height)


def test_the_reduction_never_upsamples_the_box() -> None:
    assert reduction((0, 0, 1800, 1800), (224, 224)) == 8
    assert reduction((0, 0, 1791, 1800), (224, 224)) == 4  # 1791 / 8 < 224
    assert reduction((10, 10, 458, 600), (224, 224)) == 2
    assert reduction((0, 0, 447, 1000), (224, 224)) == 1


def test_jpegs_decode_to_pils_pixels_at_full_scale(tmp_path) -> None:
    files = [
        jpeg(tmp_path, scene(300, 200)),
        jpeg(tmp_path, scene(300, 200).convert("L"), "gray.jpg"),
        jpeg(tmp_path, scene(301, 203), "subsampled.jpg", subsampling="4:2:0"),
        jpeg(tmp_path, scene(300, 200), "progressive.jpg", progressive=True),
    ]
    for file in files:
        with Image.open(file) as image:
            pixels, box = decode_for(image, (0, 0, 300, 200), (224, 224))
        assert box == (0, 0, 300, 200) and np.array_equal(pixels, np.asarray(load_image(file)))


def test_cmyk_jpegs_jpegs_libjpeg_warns_about_and_other_formats_go_through_pil(tmp_path) -> None:
    cmyk = jpeg(tmp_path, scene(120, 90).convert("CMYK"), "cmyk.jpg")
    png = tmp_path / "scene.png"
    scene(120, 90).save(png)
    whole = Path(jpeg(tmp_path, scene(120, 90))).read_bytes()
    start_of_scan = whole.index(b"\xff\xda")  # stray bytes before it: libjpeg warns, PIL decodes, simplejpeg refuses
    (tmp_path / "stray.jpg").write_bytes(whole[:start_of_scan] + b"\x00\x00" + whole[start_of_scan:])
    for file in (cmyk, png, tmp_path / "stray.jpg"):
        with Image.open(file) as image:
            pixels, _ = decode_for(image, (0, 0, 120, 90), (64, 64))
        assert np.array_equal(pixels, np.asarray(load_image(file)))


def test_a_large_jpeg_is_decoded_at_the_scale_its_box_allows(tmp_path) -> None:
    picture = scene(1600, 1200)
    file = jpeg(tmp_path, picture)
    box = (100, 60, 1300, 1160)  # 1200 x 1100: a quarter of it is still 300 x 275, more than 224 across
    with Image.open(file) as image:
        pixels, scaled = decode_for(image, box, (224, 224))
    assert pixels.shape == (300, 400, 3) and scaled == (25, 15, 325, 290)
    with Image.open(file) as image:
        ours = crop_resized(image, box, (224, 224)).permute(1, 2, 0).numpy().astype(int)
    reference = np.asarray(picture.resize((224, 224), Image.Resampling.BILINEAR, box=box)).astype(int)
    assert np.abs(ours - reference).mean() < 3  # libjpeg's DCT scaling is another low-pass filter than PIL's


def test_training_samples_are_pils_crops_of_the_same_boxes(tmp_path) -> None:
    """The loader against the one it replaced: the same boxes and flips from the same seeds, the same pixels within
    a level (PIL's resize reads past the box's edges where ours stops at them: the border differs a little)."""
    files = [jpeg(tmp_path, scene(500, 375)), jpeg(tmp_path, scene(320, 480), "tall.jpg")]
    pre = Preprocessing(input_size=224)
    augmented = AugmentedImages(LabelledImages([(f, i) for i, f in enumerate(files)], ["a", "b"], pre), Augmentation())
    for index, file in enumerate(files):
        for seed in range(8):
            pixels, label = augmented[(index, seed)]
            rng = np.random.default_rng(seed)
            image = load_image(file)
            box = crop_box(*image.size, Augmentation(), rng)
            expected = image.resize((224, 224), Image.Resampling.BILINEAR, box=box)
            if rng.random() < 0.5:
                expected = expected.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            difference = np.abs(pixels.permute(1, 2, 0).numpy().astype(int) - np.asarray(expected).astype(int))
            assert pixels.dtype == torch.uint8 and label == index and reduction(box, (224, 224)) == 1
            assert difference.mean() < 0.5 and np.mean(difference <= 1) > 0.95


@pytest.mark.shared
def test_real_jpegs_decode_as_pil_decodes_them_and_crop_within_a_level() -> None:
    coco = sorted(shared_path("detection/coco128").rglob("*.jpg"))[:8]
    files = sorted(shared_path("imagenet-sample").iterdir())[::25] + coco
    rng = np.random.default_rng(0)
    for file in files:
        reference = load_image(file)
        with Image.open(file) as image:
            pixels, _ = decode_for(image, (0, 0, 8, 8), (224, 224))
        assert np.array_equal(pixels, np.asarray(reference)), file  # grayscale files among them
        box = crop_box(*reference.size, Augmentation(), rng)
        if reduction(box, (224, 224)) == 1:
            with Image.open(file) as image:
                ours = crop_resized(image, box, (224, 224)).permute(1, 2, 0).numpy().astype(int)
            expected = np.asarray(reference.resize((224, 224), Image.Resampling.BILINEAR, box=box)).astype(int)
            assert np.abs(ours - expected).mean() < 0.5, file


def test_the_batch_is_uint8_and_normalised_by_the_task(tmp_path) -> None:
    files = [jpeg(tmp_path, scene(200, 150), f"{i}.jpg") for i in range(4)]
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not the rest of a JPEG")
    pre = Preprocessing(input_size=64)
    samples = [(f, i % 2) for i, f in enumerate([*files, str(tmp_path / "broken.jpg")])]
    augmented = AugmentedImages(LabelledImages(samples, ["a", "b"], pre), Augmentation())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        images, labels, skipped = collate([augmented[(i, 1)] for i in range(5)])
    assert images.dtype == torch.uint8 and images.shape == (4, 3, 64, 64) and skipped == 1
    assert any("broken.jpg" in str(w.message) for w in caught)
    task = ClassificationTask()
    task.preprocessing, task.num_classes = pre, 2
    net = Recorder()
    task.loss(net, images, labels, None, torch.Generator())  # type: ignore[arg-type]
    mean, std = torch.tensor(pre.mean).view(3, 1, 1), torch.tensor(pre.std).view(3, 1, 1)
    assert net.inputs.dtype == torch.float32 and torch.allclose(net.inputs, (images.float() / 255 - mean) / std)


class Recorder(torch.nn.Module):
    """A two-class network that keeps what it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(3, 2)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        self.inputs = inputs
        return self.linear(inputs.mean((2, 3)))
