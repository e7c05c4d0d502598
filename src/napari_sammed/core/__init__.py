"""Qt-free core: models, checkpoints, engine, cache, propagation, SAMAug, export."""
