"""MediaPipe's Tasks API on a TFLite file: run in an environment of its own (``benchmarks/mediapipe_env.sh``).

    mediapipe/bin/python benchmarks/mediapipe_run.py classifier|segmenter|detector MODEL.tflite IMAGE... > out.json

Prints one JSON object: for each image, the classifier's top class index and name, the segmenter's category mask
(as a list of rows), or the detector's boxes (left, top, width, height in pixels), class indices, names and scores.
Nothing of mobilenet is imported: MediaPipe reads the file's own metadata, as an app would.
"""

from __future__ import annotations

import json
import sys

import mediapipe as mp
from mediapipe.tasks import python as tasks
from mediapipe.tasks.python import vision


def main() -> None:
    kind, model, *images = sys.argv[1:]
    base = tasks.BaseOptions(model_asset_path=model)
    results = []
    if kind == "classifier":
        options = vision.ImageClassifierOptions(base_options=base, max_results=1)
        with vision.ImageClassifier.create_from_options(options) as classifier:
            for image in images:
                (top,) = classifier.classify(mp.Image.create_from_file(image)).classifications[0].categories
                results.append({"index": top.index, "name": top.category_name, "score": top.score})
    elif kind == "segmenter":
        options = vision.ImageSegmenterOptions(base_options=base, output_category_mask=True)
        with vision.ImageSegmenter.create_from_options(options) as segmenter:
            for image in images:
                mask = segmenter.segment(mp.Image.create_from_file(image)).category_mask.numpy_view()
                results.append({"mask": mask.squeeze().tolist()})
    else:
        options = vision.ObjectDetectorOptions(base_options=base, score_threshold=0.0, max_results=-1)
        with vision.ObjectDetector.create_from_options(options) as detector:
            for image in images:
                found = detector.detect(mp.Image.create_from_file(image)).detections
                results.append({"boxes": [[d.bounding_box.origin_x, d.bounding_box.origin_y, d.bounding_box.width,
                                           d.bounding_box.height] for d in found],
                                "classes": [d.categories[0].index for d in found],
                                "names": [d.categories[0].category_name for d in found],
                                "scores": [d.categories[0].score for d in found]})  # fmt: skip
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
