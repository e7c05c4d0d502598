"""Export from files: read an image and its labels (and a QC trace), export them as one case."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..export import ExportCase, ExportOptions, ExportReport, export_case
from ..export.case import CASE_NAME, Priors
from ..io.qc import read_trace_csv
from ..io.read import file_stem, read_volume
from ..io.windowing import describe_window, resolve_window
from ..settings import AmgSettings

log = logging.getLogger(__name__)


def export_files(image: str | Path, labels: str | Path, options: ExportOptions, case: str | None = None,
                 class_names: dict[int, str] | None = None, window=None, qc: str | Path | None = None,
                 engine: dict | None = None, priors_from: SamaugSource | None = None,
                 image_sha256: str | None = None) -> ExportReport:
    """Export ``labels`` over ``image`` (any format :func:`read_volume` reads) as case ``case``
    (default: the image's file stem); ``window`` renders the images as the model saw them.
    ``engine`` describes what made the labels; ``priors_from`` gives the SAMAug priors that
    ``options.samaug_channels`` / ``samaug_images`` ask for; ``image_sha256`` is the image's
    content hash when the caller already has it (a batch case), so it is not hashed again."""
    case = case or file_stem(image)
    if not CASE_NAME.fullmatch(case):  # before reading; also no trailing newline, which match's $ allows
        raise InputError(None, f"case name {case!r}: use letters, digits, '_', '-' or '.', starting with a letter or digit")
    log.info(f"reading {image} and {labels}")
    source, annotation = read_volume(image), read_volume(labels)
    trace = read_trace_csv(qc) if qc else None
    resolved = resolve_window(source.data, window)
    if options.format == "sammed2d":  # the only format that writes 8-bit images
        log.info(describe_window(resolved))
    priors = None
    if options.needs_priors:
        if priors_from is None:
            raise InputError(None, "SAMAug priors were asked for but no model or maps were given")
        priors = priors_from.priors(source.data, file_stem(image), resolved)
    export = ExportCase(case, source.data, annotation.data, source.layer_metadata(),
                        class_names or {}, resolved, engine=engine, trace=trace,
                        sources=[str(image), str(labels)], priors=priors, image_sha256=image_sha256)
    return export_case(export, options)


@dataclass
class SamaugSource:
    """Where an export's SAMAug priors come from: maps an earlier ``samaug`` run wrote in
    ``folder`` when the same model, settings and window made them, else computed. The model
    ``load_engine()`` returns is loaded in both cases: its description is what the maps'
    provenance must match."""

    load_engine: Callable[[], object]
    settings: AmgSettings = field(default_factory=AmgSettings)
    folder: str | Path | None = None

    def priors(self, data, stem: str, window) -> Priors:
        from .samaug import compute_priors, load_priors, provenance  # the model's code: only when asked

        engine = self.load_engine()
        if self.folder is not None:
            found = load_priors(self.folder, stem, provenance(engine, self.settings, window))
            if found is not None:
                log.info(f"SAMAug priors reused from {self.folder}")
                return found
            log.info(f"no SAMAug maps of {stem} made with this model, settings and window in {self.folder}")
        log.info("computing SAMAug priors")
        return compute_priors(data, engine, window, self.settings)


def class_names_from(text: str | None) -> dict[int, str]:
    """``--class-names``: ``'1=spleen,5=liver'`` or a JSON file ``{id: name}``."""
    from ..export.case import parse_class_names
    from ..io.inputs import ClassNames, load_json

    if text and text.lower().endswith(".json"):
        return load_json(text, ClassNames, "class-names JSON file").as_dict()
    return parse_class_names(text)
