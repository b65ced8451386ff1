"""Image classification: its registration (``kind``), settings and recipes (``config``), labelled folders and the
embedded digits (``data``, ``augment``), prediction and evaluation, its trainer's task, and its published weights.
Its model is the network itself, :class:`mobilenet.nn.model.MobileNet`."""
