"""ImageNet-1k's 1000 classes, shipped with the library: what index ``i`` of an ImageNet classifier means.

The order is the sorted order of the WordNet synsets, the one torchvision's and timm's checkpoints use
(and, after index 0 "background", TensorFlow's 1001-class ones). ``imagenet_classes.tsv`` beside this
module was generated once from an ImageNet class index (synset and WordNet lemmas by index); its columns:

- ``synset``: the WordNet id, ``n01440764``, also the folder name of the class in ImageNet's files;
- ``name``: torchvision's category name, the first WordNet lemma (``tench``), where the two lemmas that
  name two classes each are told apart as torchvision does (134 ``crane bird``, 639 ``maillot tank suit``);
- ``wordnet_names``: every lemma, ``tench, Tinca tinca``, as TensorFlow's label files have them.
"""

from __future__ import annotations

import functools
from importlib import resources

NUM_CLASSES = 1000
BACKGROUND = "background"  # index 0 of TensorFlow's 1001-class ImageNet models


@functools.cache
def class_table() -> tuple[tuple[str, str, str], ...]:
    """(synset, name, wordnet_names) of each class, by index, read once from the shipped file."""
    text = resources.files(__package__).joinpath("imagenet_classes.tsv").read_text(encoding="utf-8")
    rows = [line.split("\t") for line in text.splitlines()[1:]]  # the first line names the columns
    return tuple((synset, name, wordnet) for _index, synset, name, wordnet in rows)


def imagenet_classes() -> list[str]:
    """The 1000 class names as torchvision has them: ``["tench", "goldfish", "great white shark", ...]``."""
    return [name for _, name, _ in class_table()]


def imagenet_synsets() -> list[str]:
    """The 1000 WordNet synsets, sorted: ``["n01440764", "n01443537", ...]``."""
    return [synset for synset, _, _ in class_table()]


def imagenet_wordnet_names() -> list[str]:
    """The 1000 classes with all their lemmas, as TensorFlow labels them: ``["tench, Tinca tinca", ...]``."""
    return [wordnet for _, _, wordnet in class_table()]


def imagenet_names_for(num_classes: int) -> list[str] | None:
    """The ImageNet names of a classifier's outputs, if its size says ImageNet-1k (1000, or 1001 with background)."""
    if num_classes == NUM_CLASSES:
        return imagenet_classes()
    if num_classes == NUM_CLASSES + 1:
        return [BACKGROUND, *imagenet_classes()]
    return None
