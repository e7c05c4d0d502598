"""Networks and their weights: model kinds (:mod:`.specs`), builders, TinyViT, SAM-Med2D's
adapters, checkpoint reading (safe unpickling, size checks) and :func:`.load.load_model`."""
