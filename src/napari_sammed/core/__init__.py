"""Qt-free core, in layers; each imports only the ones below it (``tests/core/test_layers.py``):

- :mod:`.io` — files and formats (read, write, windowing, hashing, paths, validation, QC records)
- :mod:`.export` — training data (SAM-Med2D, nnU-Net v2, stacks); needs only ``io``
- :mod:`.model` — networks and weights (specs, builders, checkpoints, the ``LoadedModel`` record)
- :mod:`.engine` — one slice: the model families' registry and ``load_model``, backends, frame
  geometry, ``SliceEngine``, clicks, automatic masks, SAMAug
- :mod:`.volume` — whole volumes: cached embeddings, propagation
- :mod:`.jobs` — file-level jobs behind the CLI: propagate, SAMAug, export, evaluate, batch
"""
