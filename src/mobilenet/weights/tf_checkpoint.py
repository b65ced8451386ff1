"""TensorFlow checkpoints (``model.ckpt.index`` + ``model.ckpt.data-00000-of-00001``) read without TensorFlow.

A checkpoint is TensorFlow's "tensor bundle": the ``.index`` file is a sorted table in LevelDB's format (blocks of
prefix-compressed keys, an index block, a 48-byte footer) mapping each variable name to a ``BundleEntryProto``
(dtype, shape, shard, offset, size); the ``.data-NNNNN-of-MMMMM`` shards hold the tensors' little-endian bytes at
those offsets. TF-slim's published MobileNets (``mobilenet_v1_1.0_224.ckpt``, ``mobilenet_v2_1.4_224.ckpt``) and
any TF1 or TF2 ``Saver``/``Checkpoint`` write it. The few protobuf fields needed are decoded here by hand.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

INDEX = ".index"
FOOTER_SIZE = 48  # two block handles, zero-padded to 40 bytes, and the magic number
TABLE_MAGIC = 0xDB4775248B80FB57
BLOCK_TRAILER = 5  # a compression byte and a masked crc32c after each block
# TensorFlow's DataType enum -> numpy (the types a model's variables use; strings and resources are skipped).
DTYPES = {
    1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 5: np.int16, 6: np.int8, 9: np.int64, 10: np.bool_,
    14: "bfloat16", 17: np.uint16, 19: np.float16, 22: np.uint32, 23: np.uint64,
}  # fmt: skip


@dataclass(frozen=True)
class Entry:
    """Where one tensor lies: its dtype (TF's enum), shape, shard, byte offset and size."""

    dtype: int
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int
    sliced: bool


def index_of(path: str | Path) -> Path | None:
    """The ``.index`` file of a checkpoint named by its prefix (``model.ckpt``), its ``.index`` or a data shard;
    None where ``path`` names no checkpoint."""
    path = Path(path)
    if path.name.endswith(INDEX):
        return path if path.is_file() else None
    prefix = path.name.split(".data-")[0] if ".data-" in path.name else path.name
    index = path.with_name(prefix + INDEX)
    return index if index.is_file() else None


def read_tf_checkpoint(path: str | Path) -> dict[str, np.ndarray]:
    """Every tensor of a TensorFlow checkpoint, by variable name (``MobilenetV1/Conv2d_0/weights``, ...).

    ``path``: the checkpoint's prefix, its ``.index`` file or one of its data shards.
    """
    index = index_of(path)
    if index is None:
        raise FileNotFoundError(f"no TensorFlow checkpoint at {path}: pass model.ckpt, or its .index file")
    values = read_index(index)
    header = values.pop("", None)  # the BundleHeaderProto, under the empty key
    entries = {name: bundle_entry(value, f"{index}: {name}") for name, value in values.items()}
    shards = 1 if header is None else max(1, header_shards(header))
    prefix = str(index)[: -len(INDEX)]
    tensors = {}
    for shard in range(shards):
        data = Path(f"{prefix}.data-{shard:05d}-of-{shards:05d}")
        if not data.is_file():
            raise FileNotFoundError(f"{index} needs its data shard {data.name} beside it: copy the whole checkpoint")
        payload = np.memmap(data, dtype=np.uint8, mode="r") if data.stat().st_size else np.zeros(0, np.uint8)
        for name, entry in entries.items():
            if entry.shard != shard or entry.sliced or entry.dtype not in DTYPES:
                continue  # partitioned variables and strings are not a MobileNet's
            if entry.offset + entry.size > payload.size:
                raise ValueError(f"{data} is truncated: {name} lies past its end; copy the checkpoint again")
            tensors[name] = tensor(payload[entry.offset : entry.offset + entry.size], entry, name)
    return tensors


def checkpoint_names(path: str | Path) -> list[str]:
    """The variable names a checkpoint holds, read from its index alone ([] where ``path`` names no checkpoint)."""
    index = index_of(path)
    return [] if index is None else [name for name in read_index(index) if name]


def tensor(raw: np.ndarray, entry: Entry, name: str) -> np.ndarray:
    dtype = DTYPES[entry.dtype]
    if dtype == "bfloat16":  # the upper half of a float32
        wide = np.zeros(raw.size // 2, dtype="<u4")
        wide[:] = raw.view("<u2").astype("<u4") << 16
        values = wide.view("<f4")
    else:
        values = np.frombuffer(raw.tobytes(), dtype=np.dtype(dtype).newbyteorder("<"))
    if values.size != int(np.prod(entry.shape)):
        raise ValueError(f"{name} holds {values.size} values for its shape {entry.shape}: a damaged checkpoint")
    return values.reshape(entry.shape).astype(values.dtype.newbyteorder("="))


def read_index(path: Path) -> dict[str, bytes]:
    """The key -> value pairs of a LevelDB-format table file (TensorFlow's ``table::Table``)."""
    data = path.read_bytes()
    if len(data) < FOOTER_SIZE or struct.unpack("<Q", data[-8:])[0] != TABLE_MAGIC:
        raise ValueError(f"{path} is not a TensorFlow checkpoint index (no table footer): pass model.ckpt.index")
    footer = data[-FOOTER_SIZE:]
    _, position = varint(footer, 0)  # the meta-index block: unused
    _, position = varint(footer, position)
    index_offset, position = varint(footer, position)
    index_size, _ = varint(footer, position)
    entries = {}
    for _, handle in block_entries(block(data, index_offset, index_size, path)):
        offset, position = varint(handle, 0)
        size, _ = varint(handle, position)
        entries.update(block_entries(block(data, offset, size, path)))
    return entries


def block(data: bytes, offset: int, size: int, path: Path) -> bytes:
    if offset + size + BLOCK_TRAILER > len(data):
        raise ValueError(f"{path} is truncated: copy the checkpoint again")
    if data[offset + size] != 0:  # 1 is Snappy, which TensorFlow never uses for checkpoints
        raise ValueError(f"{path} has compressed blocks (type {data[offset + size]}): not a checkpoint index")
    return data[offset : offset + size]


def block_entries(contents: bytes) -> list[tuple[str, bytes]]:
    """A block's entries: each key shares a prefix with the one before it; restart points end the block."""
    restarts = struct.unpack("<I", contents[-4:])[0]
    end = len(contents) - 4 * (restarts + 1)
    entries, key, position = [], b"", 0
    while position < end:
        shared, position = varint(contents, position)
        unshared, position = varint(contents, position)
        length, position = varint(contents, position)
        key = key[:shared] + contents[position : position + unshared]
        position += unshared
        entries.append((key.decode("utf-8", errors="replace"), contents[position : position + length]))
        position += length
    return entries


def varint(data: bytes, position: int) -> tuple[int, int]:
    """A base-128 varint at ``position``: its value and the position after it."""
    value = shift = 0
    while True:
        if position >= len(data):
            raise ValueError("a TensorFlow checkpoint index ends inside a number: the file is damaged")
        byte = data[position]
        value |= (byte & 0x7F) << shift
        position += 1
        if byte < 0x80:
            return value, position
        shift += 7


def fields(message: bytes) -> list[tuple[int, int | bytes]]:
    """A protobuf message's (field number, value) pairs: varints as ints, length-delimited and fixed as bytes."""
    found: list[tuple[int, int | bytes]] = []
    position = 0
    while position < len(message):
        tag, position = varint(message, position)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, position = varint(message, position)
            found.append((number, value))
        elif wire == 2:
            length, position = varint(message, position)
            found.append((number, message[position : position + length]))
            position += length
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            found.append((number, message[position : position + width]))
            position += width
        else:
            raise ValueError(f"protobuf wire type {wire} in a checkpoint index: the file is damaged")
    return found


def header_shards(message: bytes) -> int:
    """``BundleHeaderProto.num_shards`` (field 1)."""
    return next((value for number, value in fields(message) if number == 1 and isinstance(value, int)), 1)


def bundle_entry(message: bytes, source: str) -> Entry:
    """A ``BundleEntryProto``: dtype 1, shape 2, shard_id 3, offset 4, size 5 (crc32c 6), slices 7."""
    values: dict[int, int | bytes] = {}
    sliced = False
    for number, value in fields(message):
        sliced |= number == 7
        values[number] = value
    shape_proto = values.get(2, b"")
    if not isinstance(shape_proto, bytes):
        raise ValueError(f"{source} has no tensor shape: the index is damaged")
    shape = []
    for number, dim in fields(shape_proto):
        if number == 2 and isinstance(dim, bytes):  # TensorShapeProto.dim: Dim.size is field 1
            shape.append(next((size for n, size in fields(dim) if n == 1 and isinstance(size, int)), 0))
    numbers = {key: value if isinstance(value, int) else 0 for key, value in values.items()}
    return Entry(numbers.get(1, 0), tuple(shape), numbers.get(3, 0), numbers.get(4, 0), numbers.get(5, 0), sliced)
