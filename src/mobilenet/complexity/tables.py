"""A paper's table recomputed: the published figures beside ours, as text for a terminal, Markdown for the paper
report, and records for tools. Each kind of model declares the tables of the paper it recomputes (its ``tables``);
the command line (``mobilenet profile --<table>``) and the report (``mobilenet paper``) show whatever they declare."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class PaperTable:
    """One table: ``rows`` of formatted cells under ``columns``, the raw ``records`` they come from, and notes."""

    title: str  # "Table 7: Mobile DeepLabv3 on PASCAL VOC"
    caption: str  # what was counted, for a terminal: "Mobile DeepLabv3 at 513x513, 21 classes"
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    records: tuple[dict[str, Any], ...]  # per row, every figure as a number
    notes: str = ""  # Markdown: how ours meet the paper's, and why they differ where they do
    verdict: str = "partly reproduced"  # of the paper's table as a whole (its metric needs data not here, say)

    @property
    def number(self) -> float:
        """The table's number in the paper (5 for "Tables 5-6"), to put tables in the paper's order."""
        found = re.search(r"\d+", self.title)
        return float(found[0]) if found else float("inf")

    def text(self) -> str:
        """The table for a terminal: the caption, then aligned columns."""
        widths = [max(len(cell) for cell in column) for column in zip(self.columns, *self.rows, strict=True)]
        lines = [f"{self.title}: {self.caption}"]
        for cells in (self.columns, *self.rows):
            lines.append("  ".join(cell.rjust(width) if i else cell.ljust(width)
                                   for i, (cell, width) in enumerate(zip(cells, widths, strict=True))))  # fmt: skip
        return "\n".join(lines)

    def markdown(self) -> str:
        lines = ["| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines) + (f"\n\n{self.notes}" if self.notes else "")

    def to_json(self) -> str:
        return json.dumps(list(self.records))


def counted_table(
    title: str, caption: str, rows: Sequence[Any], metric: tuple[str, str, str], madds_digits: int, notes: str
) -> PaperTable:
    """A paper's table of models counted here: ``rows`` (dataclasses with ``label``, ``paper_params_m``,
    ``params_m``, ``paper_madds_b`` and ``madds_b``) beside the paper's, and its metric ``(header, field, format)``
    (``"{:.2f}%"``), the paper's alone (blank where it gives none), written as the paper writes it."""
    header, field, style = metric
    cells = []
    for row in rows:
        paper_metric = getattr(row, field)
        cells.append((
            row.label, f"{row.paper_params_m:g}M", f"{row.params_m:.2f}M", f"{row.paper_madds_b:g}B",
            f"{row.madds_b:.{madds_digits}f}B", "" if paper_metric is None else style.format(paper_metric),
        ))  # fmt: skip
    columns = ("network", "paper params", "ours", "paper MAdds", "ours", header)
    records = tuple({"row": row.label, **asdict(row)} for row in rows)
    return PaperTable(title, caption, columns, tuple(cells), records, notes)
