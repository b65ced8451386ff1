"""TFLite Model Metadata, the standard record MediaPipe's tasks and the TFLite Task Library read: what each input and
output tensor is (an RGB image and its normalization, class probabilities, masks, boxes), with label files.

Written with flatbuffers' builder, field by field in the order of TFLite's ``metadata_schema.fbs`` (file identifier
``M001``), as the file's ``TFLITE_METADATA`` entry; label files are associated by name and stored as a zip archive
appended to the flatbuffer, where those readers look for them.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field

from mobilenet.utils.optional import require

METADATA_ENTRY = "TFLITE_METADATA"
# Enum values of the schema.
AXIS_LABELS, VALUE_LABELS = 2, 3  # AssociatedFileType: labels along an axis (classes), or of values (class indices)
RGB, GRAYSCALE = 1, 2  # ColorSpaceType
FEATURES, IMAGE, BOXES = 1, 2, 3  # ContentProperties
NORMALIZATION = 1  # ProcessUnitOptions
BOUNDARIES, RATIO = 1, 0  # BoundingBoxType, CoordinateType
# Where a box's left, top, right and bottom are in TF's (ymin, xmin, ymax, xmax).
BOX_ORDER = (1, 0, 3, 2)


@dataclass(frozen=True)
class TensorInfo:
    """One tensor's metadata; ``content``: "image" (RGB input), "masks" (per-class maps), "boxes", "features", ""."""

    name: str
    description: str
    content: str = ""
    normalization: tuple[tuple[float, ...], tuple[float, ...]] | None = None  # mean and std, in the tensor's units
    stats: tuple[float, float] | None = None  # its lowest and highest values
    labels: str | None = None  # the name of an associated label file
    label_type: int = AXIS_LABELS
    value_range: tuple[int, int] | None = None  # the dimensions its content spans
    size: tuple[int, int] | None = None  # an image's width and height


@dataclass
class ModelInfo:
    name: str
    description: str
    version: str
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    groups: dict[str, list[str]] = field(default_factory=dict)  # output tensor groups: name -> tensor names


class Writer:
    """A flatbuffers builder with the few shapes a metadata table takes: strings, vectors and tables by field slot."""

    def __init__(self) -> None:
        self.builder = require("flatbuffers", "tflite").Builder(1024)

    def string(self, text: str | None) -> int | None:
        return None if text is None else self.builder.CreateString(text)

    def vector(self, kind: str, items: list) -> int:
        """A vector of ``kind`` "offset" (tables, strings), "float32" or "uint32"."""
        builder = self.builder
        builder.StartVector(4, len(items), 4)
        prepend = {"offset": builder.PrependUOffsetTRelative, "float32": builder.PrependFloat32,
                   "uint32": builder.PrependUint32}[kind]  # fmt: skip
        for item in reversed(items):
            prepend(item)
        return builder.EndVector()

    def table(self, slots: int, **fields: tuple[int, str, object]) -> int:
        """A table of ``slots`` fields, each ``name=(slot, kind, value)`` (kind "offset", "int8", "uint8", "int32",
        "uint32"); None values are left out (the schema's default)."""
        builder = self.builder
        builder.StartObject(slots)
        prepend = {"offset": builder.PrependUOffsetTRelativeSlot, "int8": builder.PrependInt8Slot,
                   "uint8": builder.PrependUint8Slot, "int32": builder.PrependInt32Slot,
                   "uint32": builder.PrependUint32Slot}  # fmt: skip
        for slot, kind, value in fields.values():
            if value is not None:
                prepend[kind](slot, value, 0)
        return builder.EndObject()


def tensor_table(writer: Writer, info: TensorInfo) -> int:
    content, units, stats, files = None, None, None, None
    if info.content:
        properties, kind = None, {"image": IMAGE, "masks": IMAGE, "boxes": BOXES, "features": FEATURES}[info.content]
        if info.content in ("image", "masks"):
            size = None if info.size is None else writer.table(2, width=(0, "uint32", info.size[0]),
                                                                height=(1, "uint32", info.size[1]))  # fmt: skip
            space = RGB if info.content == "image" else GRAYSCALE
            properties = writer.table(2, color_space=(0, "int8", space), default_size=(1, "offset", size))
        elif info.content == "boxes":
            order = writer.vector("uint32", list(BOX_ORDER))
            properties = writer.table(3, index=(0, "offset", order), type=(1, "int8", BOUNDARIES),
                                      coordinate_type=(2, "int8", RATIO))  # fmt: skip
        else:
            properties = writer.table(0)
        span = None
        if info.value_range is not None:
            span = writer.table(2, min=(0, "int32", info.value_range[0]), max=(1, "int32", info.value_range[1]))
        content = writer.table(
            3, type=(0, "uint8", kind), properties=(1, "offset", properties), range=(2, "offset", span)
        )
    if info.normalization is not None:
        mean, std = (writer.vector("float32", list(map(float, v))) for v in info.normalization)
        options = writer.table(2, mean=(0, "offset", mean), std=(1, "offset", std))
        unit = writer.table(2, type=(0, "uint8", NORMALIZATION), options=(1, "offset", options))
        units = writer.vector("offset", [unit])
    if info.stats is not None:
        low, high = (writer.vector("float32", [float(v)]) for v in info.stats)
        stats = writer.table(2, max=(0, "offset", high), min=(1, "offset", low))
    if info.labels is not None:
        label_file = writer.table(5, name=(0, "offset", writer.string(info.labels)),
                                  description=(1, "offset", writer.string("Labels of the classes, one per line.")),
                                  type=(2, "int8", info.label_type))  # fmt: skip
        files = writer.vector("offset", [label_file])
    name, description = writer.string(info.name), writer.string(info.description)
    return writer.table(7, name=(0, "offset", name), description=(1, "offset", description),
                        content=(3, "offset", content), process_units=(4, "offset", units), stats=(5, "offset", stats),
                        associated_files=(6, "offset", files))  # fmt: skip


def metadata_flatbuffer(model: ModelInfo) -> bytes:
    """The ``TFLITE_METADATA`` buffer of ``model``: one subgraph's inputs, outputs and output groups."""
    writer = Writer()
    inputs = writer.vector("offset", [tensor_table(writer, info) for info in model.inputs])
    outputs = writer.vector("offset", [tensor_table(writer, info) for info in model.outputs])
    groups = None
    if model.groups:
        tables = []
        for group, names in model.groups.items():
            members = writer.vector("offset", [writer.string(name) for name in names])
            title = writer.string(group)
            tables.append(writer.table(2, name=(0, "offset", title), names=(1, "offset", members)))
        groups = writer.vector("offset", tables)
    subgraph = writer.table(10, inputs=(2, "offset", inputs), outputs=(3, "offset", outputs),
                            output_groups=(8, "offset", groups))  # fmt: skip
    name, description, version = (writer.string(v) for v in (model.name, model.description, model.version))
    subgraphs = writer.vector("offset", [subgraph])
    parser = writer.string("1.2.0" if model.groups else "1.0.0")  # tensor groups came with 1.2.0
    root = writer.table(8, name=(0, "offset", name), description=(1, "offset", description),
                        version=(2, "offset", version), subgraph_metadata=(3, "offset", subgraphs),
                        min_parser_version=(7, "offset", parser))  # fmt: skip
    writer.builder.Finish(root, file_identifier=b"M001")
    return bytes(writer.builder.Output())


def with_associated_files(flatbuffer: bytes, files: dict[str, str]) -> bytes:
    """The file with ``files`` (name -> text) appended as a zip archive, whose offsets count from the file's start."""
    stream = io.BytesIO(flatbuffer)
    stream.seek(0, io.SEEK_END)
    with zipfile.ZipFile(stream, "a", zipfile.ZIP_STORED) as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return stream.getvalue()
