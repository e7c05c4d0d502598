"""File-level jobs behind the CLI: propagate a volume, SAMAug maps, export, evaluate, bulk runs
of a plan (locally or on dask.distributed). Each module reads and writes files and calls the
layers below."""
