"""A new label set's last layer, started from what the weights it fine-tunes already know.

Fine-tuning to other classes replaces the last layer. A class that the start also predicts, by name, would be thrown
away and learned again: its row is kept instead (a user's {background, person} from VOC's DeepLab starts where VOC's
person is; "tench" finds ImageNet's "tench, Tinca tinca"). A class made of several of the start's (vehicle from
aeroplane, bus, car, ...) starts from their rows merged, where a setting names them. On VOC's classes merged into
five, from Coral's DeepLab, that is worth 12 points of val mIoU after one epoch; but only where every class has a
start: with two of the five rows kept and three new, the kept ones outscored the rest and the run fell 9 points
behind a layer all new (BENCHMARKS.md, "A new label set"), so a partial start is not made.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class NewLabels:
    """The classes a fine-tuned model predicts, and which of its start's classes each one's row starts from: the
    class of the same name (``keep_names``), or those ``merges`` names for it; where every class has such a start
    (a new layer started for some classes only trains worse than one all new)."""

    classes: Sequence[str]
    merges: Mapping[str, Sequence[str]] = field(default_factory=dict)
    keep_names: bool = True

    def rows_from(self, start: Sequence[str] | None) -> list[tuple[int, ...]]:
        """For each class, the indices of the start's classes (``start``: their names, or None where the start has
        none) its row starts from; empty for a new row. Raises, in one line, where a merge cannot be made."""
        unknown = [name for name in self.merges if name not in self.classes]
        if unknown:
            raise ValueError(
                f"--merge-classes names {', '.join(unknown)}, not among the data's classes "
                f"({', '.join(self.classes)}): merge into those"
            )
        if self.merges and start is None:
            raise ValueError("--merge-classes needs the start's class names, and its weights carry none: drop it")
        known = list(start or ())
        sources = {old: find_class(old, known) for olds in self.merges.values() for old in olds}
        missing = sorted(old for old, found in sources.items() if found is None)
        if missing:
            shown = ", ".join(known if len(known) <= 30 else [*known[:3], "..."])
            raise ValueError(
                f"--merge-classes takes {', '.join(missing)} from the start, which has no class of that name (or "
                f"several): name its classes as it does ({shown})"
            )
        rows = []
        for name in self.classes:
            if name in self.merges:
                rows.append(tuple(sources[old] for old in self.merges[name]))
            else:
                found = find_class(name, known) if self.keep_names else None
                rows.append(() if found is None else (found,))
        if all(rows) or not any(rows):
            return rows
        # Some rows started, the others new: the started ones outscore the rest at first, and train worse than
        # a layer all new (BENCHMARKS.md, "A new label set"). Without merges, all new; merges must cover every class.
        if self.merges:
            alone = [name for name, sources in zip(self.classes, rows, strict=True) if not sources]
            raise ValueError(
                f"--merge-classes leaves {', '.join(alone)} without a start in --weights, and a last layer started for "
                "only some classes trains worse than a new one: give each class a start (NAME=NAME keeps one), or "
                "drop --merge-classes"
            )
        return [()] * len(rows)


def find_class(name: str, known: Sequence[str]) -> int | None:
    """The index of the class called ``name`` among ``known``: by its whole name, else by one of the synonyms that
    ImageNet's names list ("tench, Tinca tinca"), where only one class has it; None where none (or several) does."""
    if name in known:
        return known.index(name)
    found = [index for index, names in enumerate(known) if name in (part.strip() for part in names.split(","))]
    return found[0] if len(found) == 1 else None


def refuse_merges(labels: NewLabels, why: str) -> None:
    """Refuse ``--merge-classes`` where no last layer is made from the start's (``why`` says so), rather than ignore
    it."""
    if labels.merges:
        raise ValueError(f"--merge-classes has nothing to merge: {why}; drop it")


def needs_new_layer(model: Any, classes: Sequence[str]) -> bool:
    """Whether ``model``'s last layer predicts other classes than ``classes`` (a model without class names is taken
    to predict them when it has as many)."""
    return model.num_classes != len(classes) or model.class_names not in (None, list(classes))


def relabel(model: Any, labels: NewLabels) -> dict[str, list[str]]:
    """Give ``model`` (a kind with ``reset_classifier``) a new last layer for ``labels.classes``, each row started from
    the start's as ``labels`` says; returns, for the run's summary, each class's start: the start's classes its row
    was made from (none: a new row)."""
    start = model.class_names
    rows = labels.rows_from(start)
    model.reset_classifier(len(labels.classes), rows_from=rows)
    return {name: [start[index] for index in sources] for name, sources in zip(labels.classes, rows, strict=True)}
