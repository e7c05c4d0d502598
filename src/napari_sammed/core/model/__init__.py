"""Networks and their weights: each family's spec and builder, TinyViT, SAM-Med2D's adapters,
checkpoint reading (safe unpickling, size checks) and the :class:`.loaded.LoadedModel` record.
No list of families lives here: ``core/engine/families.py`` holds it with the backends."""
