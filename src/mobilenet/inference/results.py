"""Results as Arrow columns: one type for every row of a run, and the Parquet file of them.

A kind's results are JSON-like dicts whose shape varies from row to row: an unreadable image has an ``error`` and
nothing else, a segmenter's class shares name the classes each image holds. Arrow's own inference looks at the
first row; here every row's type is merged into one (a field missing from a row is null there, a struct holds the
fields of all rows), so no value is dropped and every row group of the file has the same schema.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from mobilenet.utils.files import atomic_write

ROW_GROUP = 10_000  # results per Parquet row group: a few MB of memory while writing


def pyarrow_module() -> Any:
    try:
        import pyarrow
    except ImportError:
        raise ImportError("results as Parquet need pyarrow: pip install 'mobilenet[datasets]'") from None
    return pyarrow


def value_type(value: Any) -> Any:
    """The Arrow type of one JSON-like value: None, bool, int, float, str, lists and dicts of them."""
    pa = pyarrow_module()
    if value is None:
        return pa.null()
    for python, arrow in ((bool, pa.bool_()), (int, pa.int64()), (float, pa.float64()), (str, pa.string())):
        if isinstance(value, python):
            return arrow
    if isinstance(value, list | tuple):
        item = pa.null()
        for entry in value:
            item = merged_type(item, value_type(entry))
        return pa.list_(item)
    if isinstance(value, dict):
        return pa.struct([(str(key), value_type(entry)) for key, entry in value.items()])
    raise TypeError(f"a result holds a {type(value).__name__}, which has no column type: results are JSON values")


def merged_type(first: Any, second: Any) -> Any:
    """One Arrow type that holds values of both: null gives way to anything, int to float, lists merge their items,
    structs the union of their fields (in the order first seen)."""
    pa = pyarrow_module()
    if first == second or pa.types.is_null(second):
        return first
    if pa.types.is_null(first):
        return second
    if {first, second} == {pa.int64(), pa.float64()}:
        return pa.float64()
    if pa.types.is_list(first) and pa.types.is_list(second):
        return pa.list_(merged_type(first.value_type, second.value_type))
    if pa.types.is_struct(first) and pa.types.is_struct(second):
        fields = {field.name: field.type for field in first}
        for field in second:
            fields[field.name] = merged_type(fields.get(field.name, pa.null()), field.type)
        return pa.struct(list(fields.items()))
    raise ValueError(f"results disagree on a value's type ({first} and {second}): they cannot share a column")


def results_schema(results: Iterable[dict[str, Any]]) -> Any:
    """The schema that holds every one of ``results`` (see the module's docstring)."""
    pa = pyarrow_module()
    merged = pa.struct([])
    for result in results:
        merged = merged_type(merged, value_type(result))
    return pa.schema(list(merged))


def results_table(results: list[dict[str, Any]], schema: Any = None) -> Any:
    """``results`` as one Arrow table, of ``schema`` or of the schema that holds them all."""
    pa = pyarrow_module()
    return pa.Table.from_pylist(results, schema=schema if schema is not None else results_schema(results))


def write_parquet(results: Callable[[], Iterator[dict[str, Any]]], out: str | Path) -> None:
    """Write ``results()`` (called twice: once for the schema, once for the rows) as the Parquet file ``out``,
    atomically: the file appears complete or not at all."""
    pyarrow_module()
    import pyarrow.parquet as parquet

    schema = results_schema(results())

    def write(path: str) -> None:
        rows = results()
        with parquet.ParquetWriter(path, schema) as writer:
            while group := list(islice(rows, ROW_GROUP)):
                writer.write_table(results_table(group, schema))

    atomic_write(out, write)
