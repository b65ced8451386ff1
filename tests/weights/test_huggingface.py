"""Hugging Face transformers' MobileNets in and out, against transformers itself (a test-only reference).

transformers writes each folder with its own ``save_pretrained``; our reader must give its logits (TensorFlow's
1001st "background" class dropped), its preprocessing (against its own image processor), its class names; what we
write, transformers must load with our logits.
"""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from benchmarks.references import import_transformers
from PIL import Image
from safetensors.torch import load_file

from mobilenet.data.images import ImageTransform
from mobilenet.registry import create_model, kind_of_file, load
from mobilenet.weights.hub import from_pretrained, save_pretrained
from tests.helpers.data import png_bytes, shared_path
from tests.helpers.models import trained_like
from tests.helpers.runs import cli

ARCHS = {"MobileNetV2": "mobilenet_v2", "MobileNetV1": "mobilenet_v1"}
LABELS = {0: "background", **{i: f"class {i}" for i in range(1, 1001)}}  # TF-slim's layout, as Google's files
# The published transformers MobileNets: V2 at five widths, V1 at four, each at one of its resolutions.
CASES = [
    ("MobileNetV2", 1.4, 224),
    ("MobileNetV2", 1.0, 160),
    ("MobileNetV2", 0.75, 128),
    ("MobileNetV2", 0.5, 96),
    ("MobileNetV2", 0.35, 96),
    ("MobileNetV1", 1.0, 224),
    ("MobileNetV1", 0.75, 192),
    ("MobileNetV1", 0.5, 128),
    ("MobileNetV1", 0.25, 128),
]


def reference(family: str, width: float, size: int, **settings):
    """transformers' classifier with TF-slim's conventions and random, trained-looking weights."""
    transformers = import_transformers()
    config = getattr(transformers, f"{family}Config")(
        depth_multiplier=width, image_size=size, id2label=LABELS, label2id={v: k for k, v in LABELS.items()}, **settings
    )
    torch.manual_seed(0)
    return trained_like(getattr(transformers, f"{family}ForImageClassification")(config))


@pytest.mark.reference
@pytest.mark.parametrize(("family", "width", "size"), CASES)
def test_a_transformers_folder_gives_transformers_logits(tmp_path, family, width, size) -> None:
    ref = reference(family, width, size)
    ref.save_pretrained(tmp_path)
    assert kind_of_file(tmp_path).name == "classification"
    ours = from_pretrained(tmp_path).eval()
    config = ours.config
    assert (config.arch, config.width_mult, config.input_size) == (ARCHS[family], width, size)
    assert (config.padding, config.bn_eps, config.num_classes) == ("tf_same", 1e-3, 1000)
    assert ours.class_names[:2] == ["class 1", "class 2"]  # "background" dropped with its logit
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(pixel_values=x).logits[:, 1:], rtol=0, atol=1e-5)


@pytest.mark.reference
def test_a_pytorch_model_bin_and_the_image_processor_are_read_as_transformers_does(tmp_path) -> None:
    transformers = import_transformers()
    ref = reference("MobileNetV2", 1.0, 224)
    ref.save_pretrained(tmp_path)
    state = load_file(str(tmp_path / "model.safetensors"))
    (tmp_path / "model.safetensors").unlink()
    torch.save(state, tmp_path / "pytorch_model.bin")  # the layout of repositories that predate safetensors
    transformers.MobileNetV2ImageProcessor().save_pretrained(tmp_path)
    ours = load(tmp_path).eval()

    processor = transformers.AutoImageProcessor.from_pretrained(tmp_path, backend="pil")
    image = Image.open(io.BytesIO(png_bytes(375, 500))).convert("RGB")
    pixels = processor(images=image, return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(ImageTransform(ours.preprocessing)(image)[None], pixels, rtol=0, atol=1e-6)
    with torch.no_grad():
        torch.testing.assert_close(ours(pixels), ref(pixel_values=pixels).logits[:, 1:], rtol=0, atol=1e-5)


@pytest.mark.reference
@pytest.mark.parametrize("name", ["mobilenet_v2_050", "mobilenet_v1_075"])
def test_what_we_write_transformers_loads_with_our_logits(tmp_path, name) -> None:
    transformers = import_transformers()
    ours = trained_like(create_model(name, num_classes=3, input_size=128, padding="tf_same", bn_eps=1e-3))
    ours.class_names = ["cat", "dog", "bird"]
    folder = save_pretrained(ours, tmp_path / "hf", format="transformers")
    ref = transformers.AutoModelForImageClassification.from_pretrained(folder).eval()
    assert ref.config.id2label == {0: "cat", 1: "dog", 2: "bird"}
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        torch.testing.assert_close(ref(pixel_values=x).logits, ours(x), rtol=0, atol=1e-5)
    processor = transformers.AutoImageProcessor.from_pretrained(folder, backend="pil")
    image = Image.open(io.BytesIO(png_bytes(200, 300))).convert("RGB")
    pixels = processor(images=image, return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(ImageTransform(ours.preprocessing)(image)[None], pixels, rtol=0, atol=1e-6)
    back = from_pretrained(folder).eval()  # and round again: the same model
    assert back.config == ours.config and back.class_names == ours.class_names
    with pytest.raises(ValueError, match="transformers has no MobileNet with small_input=True"):
        save_pretrained(create_model("mobilenet_v2_035", small_input=True), tmp_path / "no", format="transformers")


@pytest.mark.reference
def test_predict_runs_a_transformers_folder(tmp_path) -> None:
    ref = reference("MobileNetV1", 0.25, 128)
    ref.save_pretrained(tmp_path / "hf")
    (tmp_path / "image.png").write_bytes(png_bytes(128, 128))
    image_file = tmp_path / "image.png"
    done = cli("predict", "--weights", str(tmp_path / "hf"), "--json", "--backend", "eager", str(image_file))
    assert done.returncode == 0, done.stderr
    image = Image.open(image_file).convert("RGB")
    pixels = ImageTransform(load(tmp_path / "hf").preprocessing)(image)[None]
    with torch.no_grad():
        top = int(ref(pixel_values=pixels).logits[0].argmax())
    assert json.loads(done.stdout)["top"][0]["name"] == LABELS[top]


def test_bad_transformers_folders_are_one_line_and_run_nothing(tmp_path) -> None:
    settings = {"model_type": "mobilenet_v2", "architectures": ["MobileNetV2ForImageClassification"]}
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(settings))
    with pytest.raises(FileNotFoundError, match=r"holds no model\.safetensors or pytorch_model\.bin"):
        load(folder)
    model = create_model("mobilenet_v2_035")
    save_pretrained(model, folder, format="transformers")
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="is not a complete safetensors file"):
        load(folder)

    (folder / "model.safetensors").write_bytes(data)
    written = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**written, "depth_multiplier": 0.5}))
    with pytest.raises(ValueError, match=r"does not fit mobilenet_v2 width 0\.5 with 1000 classes: .* differ in shape"):
        load(folder)
    (folder / "config.json").write_text(json.dumps({**written, "hidden_act": "gelu"}))
    with pytest.raises(ValueError, match=r"asks for the activation 'gelu' \(hidden_act='gelu'\)"):
        load(folder)
    segmenter = ["MobileNetV2ForSemanticSegmentation"]
    (folder / "config.json").write_text(json.dumps({**written, "architectures": segmenter}))
    with pytest.raises(ValueError, match=r"holds no segmentation head: its config\.json says MobileNetV2ForSemantic"):
        load(folder)
    with pytest.raises(ValueError, match="holds transformers' MobileNetV2ForSemanticSegmentation, not a classifier"):
        from_pretrained(folder)

    (folder / "config.json").write_text(json.dumps(written))
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(Exploit(tmp_path / "pwned")))
    with pytest.raises(ValueError, match="holds objects other than tensors, never unpickled here"):
        load(folder)
    assert not (tmp_path / "pwned").exists()


class Exploit:
    """A pickle that would create ``target`` when unpickled."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (Path.touch, (self.target,))


@pytest.mark.reference
@pytest.mark.parametrize(("width", "output_stride", "size"), [(1.0, 8, 129), (0.5, 16, 97)])
def test_a_transformers_deeplab_gives_transformers_logits(tmp_path, width, output_stride, size) -> None:
    transformers = import_transformers()
    voc = ["background", "aeroplane", "bicycle"]
    config = transformers.MobileNetV2Config(
        depth_multiplier=width, output_stride=output_stride, image_size=size, id2label=dict(enumerate(voc))
    )
    torch.manual_seed(0)
    ref = trained_like(transformers.MobileNetV2ForSemanticSegmentation(config))
    ref.save_pretrained(tmp_path)
    assert kind_of_file(tmp_path).name == "segmentation"
    ours = load(tmp_path).eval()
    assert ours.class_names == voc  # VOC's background is a class: kept
    assert (ours.config.output_stride, ours.config.bn_eps, ours.config.head_bn_eps) == (output_stride, 1e-3, 1e-5)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        # transformers returns the logits at the output stride; TF's DeepLab (and ours) upsamples them so.
        expected = F.interpolate(ref(pixel_values=x).logits, size=(size, size), mode="bilinear", align_corners=True)
        torch.testing.assert_close(ours(x), expected, rtol=0, atol=2e-6)
        one_eps = load(tmp_path, head_bn_eps=None).eval()  # the head at the backbone's eps: not transformers' model
        assert (one_eps(x) - expected).abs().max() > 1e-5


@pytest.mark.shared
@pytest.mark.reference
def test_google_weights_we_write_classify_real_images_in_transformers(tmp_path, synset_to_index) -> None:
    """Coral's V2 1.0 (real TF-slim weights, imported from TFLite) written for transformers, run by transformers with
    its own image processor on real ImageNet images: our classes, and the file's accuracy."""
    transformers = import_transformers()
    ours = load(shared_path("weights/mobilenet_v2_1.0_224_quant.tflite")).eval()
    folder = save_pretrained(ours, tmp_path / "hf", format="transformers")
    ref = transformers.AutoModelForImageClassification.from_pretrained(folder).eval()
    processor = transformers.AutoImageProcessor.from_pretrained(folder, backend="pil")
    files = sorted(shared_path("imagenet-sample").glob("*.JPEG"))[::5]
    images = [Image.open(file).convert("RGB") for file in files]
    labels = torch.tensor([synset_to_index[file.name.split("_")[0]] for file in files])
    pixels = processor(images=images, return_tensors="pt")["pixel_values"]
    with torch.no_grad():  # on transformers' pixels: its resize truncates the long side where ours rounds it
        theirs, mine = ref(pixel_values=pixels).logits, ours(pixels)
    torch.testing.assert_close(theirs, mine, rtol=0, atol=1e-4)
    assert ref.config.id2label[0].startswith("tench")
    assert (theirs.argmax(1) == labels).float().mean() >= 0.85  # the file's floor in tests/weights/test_tflite.py
