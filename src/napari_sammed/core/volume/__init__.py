"""Whole volumes: slice embeddings computed lazily and cached on disk, and propagation of
masks from slice to slice with quality control."""
