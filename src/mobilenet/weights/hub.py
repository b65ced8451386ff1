"""The Hugging Face Hub: a model as a Hub folder (weights, config, model card), pulled and pushed.

A folder holds ``model.safetensors`` (our format: config, class names and preprocessing in its metadata),
``config.json`` (the same, readable without PyTorch, and the measured metrics) and ``README.md``, a model
card. Pulling and pushing go through ``huggingface_hub`` (the ``hub`` extra). ``from_pretrained`` also
reads timm's Hub repositories (``timm/mobilenetv2_100.ra_in1k``), whose ``config.json`` gives the
preprocessing.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Literal

from mobilenet.nn.model import MobileNet
from mobilenet.nn.variants import model_name
from mobilenet.utils.files import atomic_text
from mobilenet.utils.optional import require
from mobilenet.weights.format import save_weights
from mobilenet.weights.huggingface import PROCESSOR_FILE, architecture, save_transformers
from mobilenet.weights.huggingface import WEIGHTS_FILES as TRANSFORMERS_WEIGHTS
from mobilenet.weights.load import load_model

WEIGHTS_FILE, CONFIG_FILE, CARD_FILE = "model.safetensors", "config.json", "README.md"


def save_pretrained(
    model: MobileNet,
    folder: str | Path,
    metrics: dict[str, float] | None = None,
    format: Literal["mobilenet", "transformers"] = "mobilenet",
) -> Path:
    """Write ``model`` as a Hub folder; ``metrics`` (fractions, e.g. ``{"top1": 0.72}``) go into the card.

    ``format="transformers"`` writes Hugging Face transformers' layout instead (see
    :func:`~mobilenet.weights.huggingface.save_transformers`): ``AutoModelForImageClassification`` loads it."""
    if format == "transformers":
        return save_transformers(model, folder)
    if format != "mobilenet":
        raise ValueError(f"unknown Hub folder format {format!r}: choose 'mobilenet' or 'transformers'")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_weights(model, folder / WEIGHTS_FILE)
    config = {
        "library": "mobilenet",
        "library_version": metadata.version("mobilenet"),  # not mobilenet.__version__: weights stays below the root
        "model": model_name(model.config),
        "config": asdict(model.config),
        "preprocessing": asdict(model.preprocessing),
        "class_names": model.class_names,
        "metrics": metrics or {},
    }
    atomic_text(folder / CONFIG_FILE, json.dumps(config, indent=2) + "\n")
    atomic_text(folder / CARD_FILE, model_card(model, metrics or {}))
    return folder


def model_card(model: MobileNet, metrics: dict[str, float]) -> str:
    """A Hub model card: metadata for the Hub's search, then what the model is and how to use it."""
    config, pre = model.config, model.preprocessing
    params = sum(p.numel() for p in model.parameters())
    scores = "\n".join(f"| {name} | {value:.2%} |" for name, value in metrics.items()) or "| (none measured) | |"
    return f"""---
library_name: mobilenet
license: apache-2.0
tags: [image-classification, mobilenet, {config.arch}]
pipeline_tag: image-classification
---

# {model_name(config)}

{config.arch} (width {config.width_mult:g}), {config.num_classes} classes, {params:,} parameters, input
{pre.input_size}x{pre.input_size}.

Preprocessing: {pre.describe_resize()}, mean {list(pre.mean)}, std {list(pre.std)} of pixels in [0, 1].

| metric | value |
|---|---|
{scores}

```python
from mobilenet.weights.hub import from_pretrained
model = from_pretrained("<this repository>").eval()
```

The full configuration is in `config.json` and in the metadata of `model.safetensors`.
"""


def from_pretrained(source: str | Path, revision: str | None = None) -> MobileNet:
    """A model from a Hub folder on disk, or from a Hub repository (``"user/name"``), downloaded once: ours, timm's
    (``timm/mobilenetv2_100.ra_in1k``) or transformers' (``google/mobilenet_v2_1.0_224``)."""
    path = Path(source)
    if path.is_dir():
        if architecture(path) is not None:
            return load_model(path)
        weights = path / WEIGHTS_FILE
        if not weights.is_file():
            raise FileNotFoundError(f"{path} holds no {WEIGHTS_FILE}: it is not a Hub folder of a model")
        return load_model(weights)
    hub, errors = require("huggingface_hub", "hub"), require("huggingface_hub.errors", "hub")

    def download(name: str, needed: bool = True) -> Path | None:
        try:
            return Path(hub.hf_hub_download(str(source), name, revision=revision))
        except errors.EntryNotFoundError:
            if needed:
                raise
            return None

    try:
        config = download(CONFIG_FILE, needed=False)  # timm's and transformers' repositories keep their settings there
        if config is not None and architecture(config.parent) is not None:
            download(PROCESSOR_FILE, needed=False)
            weights = download(TRANSFORMERS_WEIGHTS[0], needed=False) or download(TRANSFORMERS_WEIGHTS[1])
        else:
            weights = download(WEIGHTS_FILE)
    except (errors.HfHubHTTPError, errors.LocalEntryNotFoundError, OSError) as error:
        # The Hub's first line is its HTTP status; what the status means is in the error's class.
        known = {errors.RepositoryNotFoundError: "no such repository, or a private one that needs `hf auth login`",
                 errors.RevisionNotFoundError: f"no revision {revision}"}  # fmt: skip
        message = next((text for kind, text in known.items() if isinstance(error, kind)), str(error).splitlines()[0])
        raise OSError(f"cannot fetch {source} from the Hugging Face Hub ({message}): pass a local folder") from None
    return load_model(weights)


def push_to_hub(model: MobileNet, repo_id: str, metrics: dict[str, float] | None = None, private: bool = False) -> str:
    """Upload ``model`` as a Hub folder to ``repo_id`` (created if needed); returns the commit's URL."""
    hub = require("huggingface_hub", "hub")
    api = hub.HfApi()
    with tempfile.TemporaryDirectory(prefix="mobilenet-hub-") as folder:
        save_pretrained(model, folder, metrics)
        api.create_repo(repo_id, private=private, exist_ok=True)
        commit = api.upload_folder(repo_id=repo_id, folder_path=folder, commit_message="Upload with mobilenet")
    return str(commit)
