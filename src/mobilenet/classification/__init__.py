"""Image classification: labelled folders, the trainer's classification task, evaluation and prediction."""
