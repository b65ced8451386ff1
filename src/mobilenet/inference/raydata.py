"""Bulk inference across machines on Ray Data: a callable class for ``Dataset.map_batches``.

Ray schedules the work (actors on every machine of a cluster, the files read where they lie, retries, back-pressure);
each actor loads the weights once, deployed as ``mobilenet predict`` deploys them, and decodes each image as
``predict`` does, so a row's result is the line ``predict`` writes for that file::

    import ray
    from mobilenet.inference.raydata import Predictor

    images = ray.data.read_binary_files("s3://bucket/images/", include_paths=True)
    results = images.map_batches(Predictor, fn_constructor_kwargs={"weights": "model.safetensors"},
                                 compute=ray.data.ActorPoolStrategy(size=8), num_cpus=1, batch_size=64)
    results.write_parquet("s3://bucket/predictions/")  # columns image, error, result (the result as JSON)

Images come as encoded bytes (``read_binary_files``, with ``include_paths=True`` for their names) or as paths that
every worker can read. Not ``read_images``: it decodes (and may resize) with its own code, not the model's. Leave
CPUs to the tasks that read the files: actors that hold every CPU of a cluster leave the reading waiting forever.
"""

from __future__ import annotations

import json
import os
from typing import Any

from mobilenet.data.images import Encoded

COLUMNS = ("bytes", "path")  # what read_binary_files gives: the file's bytes and, with include_paths, its path


class Predictor:
    """Predictions of one weights file on a Ray Data batch: per row its ``image`` (the path, else its number in the
    batch), ``error`` (None unless the image could not be read) and ``result`` (the kind's result, as JSON).

    Args:
        weights: any weights file ``mobilenet predict`` reads, or a published name; on every worker.
        backend: as ``mobilenet predict --backend`` (auto: the fastest installed on the worker).
        precision: as ``--precision``.
        calibration: int8: a folder of images on every worker.
        threads: the backend's threads; default: the actor's CPUs (``num_cpus`` of ``map_batches``), which Ray
            hands it as ``OMP_NUM_THREADS``, so that actors on one machine do not fight over its cores.
        **options: the kind's own predict options (``top=5``, ``score=0.5``, ...).
    """

    def __init__(
        self,
        weights: str,
        backend: str = "auto",
        precision: str | None = None,
        calibration: str | None = None,
        threads: int | None = None,
        **options: Any,
    ) -> None:
        from mobilenet import registry

        if threads is None and os.environ.get("OMP_NUM_THREADS", "").isdigit():
            threads = int(os.environ["OMP_NUM_THREADS"]) or None  # what Ray gave the actor: its num_cpus
        self.kind = registry.kind_of_weights(weights)
        self.model = registry.load_deployed(weights, backend, precision, calibration, threads)
        self.options = options

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        if not any(column in batch for column in COLUMNS):
            raise ValueError(f"a batch of columns {', '.join(batch)}: expected bytes (ray.data.read_binary_files, "
                             "include_paths=True) or path, of encoded image files")  # fmt: skip
        paths = [str(path) for path in batch["path"]] if "path" in batch else None
        if "bytes" in batch:
            names = paths or [str(row) for row in range(len(batch["bytes"]))]
            images: list[Any] = [Encoded(name, bytes(data)) for name, data in zip(names, batch["bytes"], strict=True)]
        else:
            images = paths  # type: ignore[assignment]
        results = self.kind.call("predict", self.model, images, **self.options)
        rows = {"image": [], "error": [], "result": []}
        for result in results:
            rows["image"].append(result.pop("image"))
            rows["error"].append(result.pop("error", None))
            rows["result"].append(json.dumps(result) if rows["error"][-1] is None else None)
        return rows
