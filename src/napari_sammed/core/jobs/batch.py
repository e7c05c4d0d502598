"""Bulk runs: every case of a :class:`~.plan.Plan` end to end, in one process or on dask.distributed.

Per case (:func:`run_case`, one task): ``OUTDIR/<case>/labels.nii.gz`` (image geometry),
``qc.csv``/``qc.json``, ``samaug/<stem>_{seg_prior,boundary_prior,augmented}.tif`` and, written
last, ``done.json``: a case whose ``done.json`` matches the plan, its inputs and the model is
skipped on a rerun; embeddings persist in ``OUTDIR/.cache/<case>`` so an interrupted case resumes
without re-encoding. A failing case becomes an error row; the others go on. What a rerun
trusts (done.json, exported.json, OUTDIR's folders) is checked first (:mod:`.resume`).

The export dataset is assembled afterwards in the driver, one case after the other, from the
per-case results (``OUTDIR/export``), so no two workers ever write the same index file.
"""

from __future__ import annotations

import csv
import datetime
import io
import logging
import os
import shutil
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io.atomic import atomic_write
from ..io.hashing import json_hash
from ..io.tables import text_table
from .cluster import check_address, dask_client, parse_cluster
from .plan import CaseSpec, Plan
from .resume import (
    CACHE,
    DONE,
    EXPORT,
    EXPORT_RECORD,
    case_key,
    check_outdir,
    is_done,
    output_sizes,
    read_done,
    read_export_record,
    write_json,
)

COLUMNS = ("case", "status", "seconds", "objects", "mean_predicted_iou", "error")
#: Slice embeddings held in memory per volume; the rest stay in the on-disk cache
#: (LiteMedSAM: 4 MiB a slice, so 32 slices = 128 MiB however long the volume).
MEMORY_SLICES = 32
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelConfig:
    """What ``load_model`` needs; hashable, so a worker process keeps one engine per config."""

    checkpoint: str | None = None
    kind: str | None = None
    device: str = "auto"
    dtype: str = "fp32"
    batch_size: int = 4
    threads: int | None = None  # torch intra-op threads in the process (None: torch's default)

    def identity(self) -> dict:
        """What makes results differ (the device does not, for resuming)."""
        checkpoint = None if self.checkpoint is None else str(Path(self.checkpoint).resolve())
        return {"checkpoint": checkpoint, "kind": self.kind, "dtype": self.dtype}


_ENGINES: dict[ModelConfig, object] = {}
_LOADS: dict[ModelConfig, int] = {}


def engine_for(model: ModelConfig):
    """The process's engine for ``model``, loaded on first use (once per worker process)."""
    if model not in _ENGINES:
        import torch

        from ..engine.families import load_model
        from ..engine.slice_engine import SliceEngine

        if model.threads:
            torch.set_num_threads(model.threads)
        _ENGINES[model] = SliceEngine(load_model(model.checkpoint, device=model.device, dtype=model.dtype,
                                                 kind=model.kind), batch_size=model.batch_size)
        _LOADS[model] = _LOADS.get(model, 0) + 1
    return _ENGINES[model]


def engine_loads(model: ModelConfig) -> int:
    """How often this process loaded ``model`` (1 after any number of cases)."""
    return _LOADS.get(model, 0)


# ---- one case ------------------------------------------------------------------------------
def one_line(error: BaseException) -> str:
    """An error as one line for the summary (type named unless it is an input error)."""
    from ..io.error_text import squeezed
    from .errors import is_input_error

    text = squeezed(str(error), 400) or "(no message)"
    if not is_input_error(error):
        text = f"{type(error).__name__}: {text}"
    return text


def peak_rss_mib() -> float | None:
    """This process's peak resident memory so far (MiB), where the OS reports it."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def _row(case: str, status: str, seconds: float, objects=None, iou=None, error: str = "") -> dict:
    return {"case": case, "status": status, "seconds": round(float(seconds), 2),
            "objects": "" if objects is None else int(objects),
            "mean_predicted_iou": "" if iou is None else round(float(iou), 4), "error": error}


def _trace_stats(trace: list) -> tuple[int, float | None]:
    from ..io.qc import object_summary

    ious = [r.predicted_iou for r in trace if r.source == "propagated" and r.predicted_iou is not None]
    return len(object_summary(trace)), (float(np.mean(ious)) if ious else None)


def _cached_row(case: CaseSpec, done: dict) -> dict:
    """A skipped case's row from its done.json (values of the wrong type left out)."""
    def number(key):
        value = done.get(key)
        return value if isinstance(value, int | float) and not isinstance(value, bool) else None

    return _row(case.name, "cached", number("seconds") or 0.0, number("objects"), number("mean_predicted_iou"))


def labels_path(case: CaseSpec, plan: Plan, outdir: Path) -> Path:
    """The labels a case's later steps use: the propagated ones, else the plan's, else an earlier run's."""
    if "propagate" in plan.steps or case.labels is None:
        return outdir / case.name / "labels.nii.gz"
    return case.labels


def open_case(case: CaseSpec, plan: Plan, engine, cache_dir: Path, axis: str | None = None, volume=None):
    """The case's image (read unless ``volume`` is given), windowed, as the lazily embedded
    :class:`VolumeEmbeddings` its steps share (``.source``: the opened volume)."""
    from ..io.read import read_volume
    from ..io.windowing import describe_window, resolve_window
    from ..volume.embeddings import VolumeEmbeddings

    if volume is None:
        log.info(f"reading {case.image}")
        volume = read_volume(case.image)
        if volume.data.ndim != 3:
            raise InputError(case.image, f"batch cases need a 3D image, got shape {volume.data.shape}")
    window = resolve_window(volume.data, plan.window_of(case))
    log.info(describe_window(window))
    embeddings = VolumeEmbeddings(engine, volume.data, window, axis or plan.axis, cache_dir,
                                  memory_slices=MEMORY_SLICES)
    embeddings.source = volume
    return embeddings


def run_case(case: CaseSpec, plan: Plan, outdir: str | Path, engine, model: ModelConfig | None = None) -> dict:
    """Run one case's steps (propagate, samaug) end to end; returns its summary row.

    Never raises for a bad case: the error is the row's ``error`` (one line), status "error".
    """
    start = time.perf_counter()
    outdir, model = Path(outdir), model or ModelConfig()
    case_dir = outdir / case.name
    try:
        if not {"propagate", "samaug"} & set(plan.steps):  # export only: the labels must be there
            if not labels_path(case, plan, outdir).exists():
                raise InputError(None, f"no labels at {labels_path(case, plan, outdir)}: give labels: in the plan "
                                 "or run the propagate step first")
            return _row(case.name, "ok", time.perf_counter() - start)
        key = case_key(case, plan, model)
        done = read_done(case_dir)  # None unless its outputs are all still there
        if done is not None and done.get("key") == key:
            return _cached_row(case, done)
        (case_dir / DONE).unlink(missing_ok=True)
        log.info(f"case {case.name}")  # the lines that follow (window, reading, ...) are this case's
        case_dir.mkdir(parents=True, exist_ok=True)
        cache_dir = outdir / CACHE / case.name
        window = plan.window_of(case)
        objects = iou = None
        outputs: list[str] = []
        embeddings = open_case(case, plan, engine, cache_dir)  # the image read once, hashed once
        if "propagate" in plan.steps:
            from .propagate import propagate_volume

            report = propagate_volume(embeddings.source, embeddings, case.image, case.seeds,
                                      case_dir / "labels.nii.gz", plan.propagation.settings(), overwrite=True)
            for written in report.trace_files:  # labels_qc.csv/.json -> qc.csv/.json
                os.replace(written, case_dir / f"qc{written.suffix}")
            objects, iou = _trace_stats(report.rows)
            outputs += ["labels.nii.gz", "qc.csv", "qc.json"]
        if "samaug" in plan.steps:
            from .samaug import samaug_volume

            along_z = embeddings if embeddings.axis == 0 else open_case(case, plan, engine, cache_dir, "z",
                                                                         embeddings.source)
            maps = samaug_volume(along_z, case.image, case_dir / "samaug", plan.samaug.settings())
            outputs += [str(p.relative_to(case_dir)) for p in maps]
        seconds = time.perf_counter() - start
        write_json(case_dir / DONE, {
            "key": key, "case": case.name, "status": "ok", "seconds": round(seconds, 2), "objects": objects,
            "mean_predicted_iou": iou, "engine": engine.describe(), "window": window, "outputs": outputs,
            "image_sha256": embeddings.data_sha256,  # the export's provenance reuses it
            "output_bytes": output_sizes(case_dir, outputs),
            "pid": os.getpid(), "engine_loads_in_process": engine_loads(model) if model else None,
            "peak_rss_mib_in_process": peak_rss_mib(),
            "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")})
        if not plan.keep_cache:
            shutil.rmtree(cache_dir, ignore_errors=True)
        return _row(case.name, "ok", seconds, objects, iou)
    except Exception as error:  # noqa: BLE001 - fault isolation: one bad case never stops the run
        return _row(case.name, "error", time.perf_counter() - start, error=one_line(error))


# ---- export (driver, after the cases) -------------------------------------------------------
def export_root(plan: Plan, outdir: Path) -> Path:
    """Where the plan's export dataset goes under ``outdir``."""
    root = outdir / EXPORT
    return root / plan.export.dataset_name if plan.export.format == "sammed2d" else root


def export_cases(plan: Plan, outdir: Path, rows: list[dict], model: ModelConfig | None = None) -> None:
    """Add every finished case to the one dataset under ``OUTDIR/export`` (sequentially, append).

    A case already exported with the same results and options is skipped; a failing export
    turns the case's row into an error row. SAMAug channels or images reuse the case's
    ``samaug/`` maps when the plan's SAMAug step made them, else ``model`` computes them.
    """
    from .export import SamaugSource, export_files

    spec = plan.export
    folder = export_root(plan, outdir)
    record_path = outdir / EXPORT_RECORD
    record = read_export_record(outdir, folder)
    by_name = {c.name: c for c in plan.cases}
    for row in rows:
        if row["status"] not in ("ok", "cached"):
            continue
        case = by_name[row["case"]]
        case_dir = outdir / case.name
        done = read_done(case_dir) or {}
        engine = done.get("engine") if isinstance(done.get("engine"), dict) else None
        key = json_hash([done.get("key"), spec.model_dump(), plan.samaug.model_dump()])
        if (record.get(case.name) or {}).get("key") == key:
            continue
        try:
            options = spec.options(folder)  # append; a rerun replaces the case's earlier export
            qc = case_dir / "qc.csv"
            priors_from = SamaugSource(lambda: engine_for(model or ModelConfig()), plan.samaug.settings(),
                                       case_dir / "samaug") if options.needs_priors else None
            export_files(case.image, labels_path(case, plan, outdir), options, case.name, plan.class_names,
                         plan.window_of(case), qc if qc.exists() else None, engine=engine,
                         priors_from=priors_from, image_sha256=done.get("image_sha256"))
        except Exception as error:  # noqa: BLE001 - one case's export never stops the others
            row.update(status="error", error="export: " + one_line(error))
            continue
        record[case.name] = {"key": key, "format": spec.format,
                             "samaug": plan.samaug.model_dump() if options.needs_priors else None}
        write_json(record_path, record)


# ---- runners -------------------------------------------------------------------------------
def _progress(iterable: Iterable, total: int, desc: str, enabled: bool):
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="case", file=sys.stderr)


def run_local(plan: Plan, outdir: Path, model: ModelConfig, cases: list[CaseSpec], progress: bool = True) -> list[dict]:
    """One process, the model loaded once (when a case needs it), cases one after another."""
    rows = []
    for case in _progress(cases, len(cases), "cases", progress):
        try:
            engine = engine_for(model)
        except Exception as error:  # noqa: BLE001 - a model that cannot load fails every case
            rows.append(_row(case.name, "error", 0.0, error="model: " + one_line(error)))
            continue
        rows.append(run_case(case, plan, outdir, engine, model))
    return rows


def _case_task(case: CaseSpec, plan: Plan, outdir: str, model: ModelConfig) -> dict:
    """What a dask worker runs: the worker process's engine (loaded once), then the case."""
    try:
        engine = engine_for(model)
    except Exception as error:  # noqa: BLE001
        return _row(case.name, "error", 0.0, error="model: " + one_line(error))
    return run_case(case, plan, outdir, engine, model)


def run_dask(plan: Plan, outdir: Path, model: ModelConfig, cases: list[CaseSpec], client,
             progress: bool = True) -> list[dict]:
    """One task per case on a ``dask.distributed.Client``; rows in completion order."""
    from distributed import as_completed

    futures = {client.submit(_case_task, case, plan, str(outdir), model, pure=False,
                             key=f"napari-sammed-case-{case.name}-{os.urandom(4).hex()}"): case for case in cases}
    rows = []
    for future in _progress(as_completed(futures), len(futures), "cases", progress):
        try:
            rows.append(future.result())
        except Exception as error:  # noqa: BLE001 - a worker died or the task could not run
            rows.append(_row(futures[future].name, "error", 0.0, error=one_line(error)))
    return rows


@dataclass
class BatchResult:
    """What a bulk run did: one row per case, the summary file, time; its exit code."""

    rows: list[dict]
    summary: Path
    seconds: float
    workers: dict = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return 0 if all(r["status"] in ("ok", "cached") for r in self.rows) else 1


def run_batch(plan: Plan, outdir: str | Path, model: ModelConfig = ModelConfig(), cluster: str | None = None,
              scheduler: str | None = None, client=None, progress: bool = True) -> BatchResult:
    """Run ``plan`` into ``outdir``: locally, on a ``local:N`` LocalCluster, on a scheduler
    address, or on a given ``client``; then the export; then ``summary.csv``."""
    start = time.perf_counter()
    outdir = Path(outdir)
    if model.checkpoint and not Path(model.checkpoint).is_file():
        raise FileNotFoundError(f"no such checkpoint: {model.checkpoint}")
    if scheduler:
        check_address(scheduler)
    elif cluster:
        parse_cluster(cluster)
    check_outdir(plan, outdir, export_root(plan, outdir) if plan.export else outdir / EXPORT)
    todo, cached = [], {}
    for case in plan.cases:  # finished cases never reach a worker
        done = is_done(case, plan, model, outdir)
        if done is not None:
            cached[case.name] = _cached_row(case, done)
        else:
            todo.append(case)
    computed: list[dict] = []
    if todo and not {"propagate", "samaug"} & set(plan.steps):  # export only: no model, no workers
        computed = [run_case(case, plan, outdir, None, model) for case in todo]
    elif todo and client is not None:
        outdir.mkdir(parents=True, exist_ok=True)
        computed = run_dask(plan, outdir, model, todo, client, progress)
    elif todo and (cluster or scheduler):
        with dask_client(cluster, scheduler) as (own, workers):
            if workers:  # torch threads: the cores shared among the local workers
                model = replace(model, threads=model.threads or max(1, (os.cpu_count() or 1) // workers))
            outdir.mkdir(parents=True, exist_ok=True)  # once the cluster is up: a failed start leaves nothing
            computed = run_dask(plan, outdir, model, todo, own, progress)
    elif todo:
        outdir.mkdir(parents=True, exist_ok=True)
        computed = run_local(plan, outdir, model, todo, progress)
    outdir.mkdir(parents=True, exist_ok=True)
    by_name = {**cached, **{r["case"]: r for r in computed}}
    rows = [by_name[c.name] for c in plan.cases]
    if "export" in plan.steps:
        export_cases(plan, outdir, rows, model)
    summary = write_summary(rows, outdir / "summary.csv")
    return BatchResult(rows, summary, time.perf_counter() - start)


# ---- summary -------------------------------------------------------------------------------
def summary_csv(rows: list[dict]) -> str:
    """The summary rows as CSV text."""
    out = io.StringIO()
    writer = csv.DictWriter(out, COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def write_summary(rows: list[dict], path: Path) -> Path:
    """Write the summary CSV atomically; returns its path."""
    text = summary_csv(rows)
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def format_table(rows: list[dict]) -> str:
    """The summary as an aligned text table (what the CLI prints)."""
    return text_table(COLUMNS, [[r[c] for c in COLUMNS] for r in rows], left=len(COLUMNS))
