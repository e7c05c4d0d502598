"""Export from files: read an image and its labels (and a QC trace), export them as one case."""

from __future__ import annotations

import logging
from pathlib import Path

from ..export import ExportCase, ExportOptions, export_case
from ..io.qc import read_trace_csv
from ..io.read import file_stem, read_volume
from ..io.windowing import describe_window, resolve_window

log = logging.getLogger(__name__)


def export_files(image: str | Path, labels: str | Path, options: ExportOptions, case: str | None = None,
                 class_names: dict[int, str] | None = None, window=None, qc: str | Path | None = None,
                 engine: dict | None = None) -> dict:
    """Export ``labels`` over ``image`` (any format :func:`read_volume` reads) as case ``case``
    (default: the image's file stem); ``window`` renders the images as the model saw them."""
    log.info(f"reading {image} and {labels}")
    source, annotation = read_volume(image), read_volume(labels)
    trace = read_trace_csv(qc) if qc else None
    resolved = resolve_window(source.data, window)
    if options.format == "sammed2d":  # the only format that writes 8-bit images
        log.info(describe_window(resolved))
    export = ExportCase(case or file_stem(image), source.data, annotation.data, source.layer_metadata(),
                        class_names or {}, resolved, engine=engine, trace=trace,
                        sources=[str(image), str(labels)])
    return export_case(export, options)


def class_names_from(text: str | None) -> dict[int, str]:
    """``--class-names``: ``'1=spleen,5=liver'`` or a JSON file ``{id: name}``."""
    from ..export.case import parse_class_names
    from ..io.inputs import ClassNames, load_json

    if text and text.lower().endswith(".json"):
        return load_json(text, ClassNames, "class-names JSON file").as_dict()
    return parse_class_names(text)
