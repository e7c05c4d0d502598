"""``napari-sammed`` command line: thin argument parsing around the Qt-free core."""

from __future__ import annotations

import argparse
import signal
import sys
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", default=None,
                   help="SAM-Med2D / SAM / MedSAM / LiteMedSAM checkpoint; omit for LiteMedSAM "
                        "(bundled, medical, box prompts)")
    p.add_argument("--kind", default=None,
                   help="force a model kind (e.g. medsam, lite-medsam); weight-free: the classical "
                        "intensity segmenter (no network)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    p.add_argument("--dtype", default="fp32", help="fp32, bf16, fp16 (image encoder)")
    p.add_argument("--batch-size", type=int, default=4)


def _add_window_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--window", default=None,
                   help="ct-soft-tissue, ct-abdomen, ct-lung, ct-bone, ct-brain, percentile or LOW,HIGH")


def parse_window(text: str | None):
    if text and "," in text:
        try:
            low, high = (float(v) for v in text.split(","))
        except ValueError:
            raise ValueError(f"--window {text!r}: give a preset name or two numbers LOW,HIGH") from None
        return (low, high)
    return text


def parse_ids(text: str | None, option: str) -> list[int] | None:
    """``"1,5"`` -> [1, 5] (for ``--objects``)."""
    if not text:
        return None
    try:
        ids = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{option} {text!r}: give label ids as comma-separated integers, e.g. 1,5") from None
    if any(i <= 0 for i in ids):
        raise ValueError(f"{option} {text!r}: label ids start at 1")
    return ids


def _engine(args):
    from .core.engine.slice_engine import SliceEngine
    from .core.model.load import load_model

    if args.batch_size < 1:
        raise ValueError(f"--batch-size {args.batch_size}: give 1 or more")
    model = load_model(args.checkpoint, device=args.device, dtype=args.dtype, kind=args.kind)
    return SliceEngine(model, batch_size=args.batch_size)


class _Progress:
    """A tqdm bar on stderr, opened at the first update (so errors print without one)."""

    def __init__(self, desc: str) -> None:
        self.desc, self.bar = desc, None

    def __call__(self, done: int, total: int) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=total, desc=self.desc, unit="slice", file=sys.stderr)
        self.bar.total, self.bar.n = total, done
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def cmd_convert(args) -> int:
    from .core.model.checkpoints import convert_checkpoint

    sha = convert_checkpoint(args.input, args.output, overwrite=args.overwrite)
    print(f"wrote {args.output}\nsha256 {sha}")
    return 0


def cmd_info(args) -> int:
    import json

    from .core.engine.slice_engine import SliceEngine
    from .core.model.load import load_model

    engine = SliceEngine(load_model(args.checkpoint, device=args.device, dtype=args.dtype, kind=args.kind))
    print(json.dumps(engine.describe(), indent=2))
    return 0


def cmd_embed(args) -> int:
    from .core.io.read import read_volume
    from .core.io.windowing import resolve_window
    from .core.volume.embeddings import VolumeEmbeddings

    volume = read_volume(args.image)
    if volume.data.ndim != 3:
        raise ValueError(f"embed needs a 3D volume, got shape {volume.data.shape}")
    engine = _engine(args)
    window = resolve_window(volume.data, parse_window(args.window))
    store = VolumeEmbeddings(engine, volume.data, window, args.axis, cache_dir=args.cache_dir,
                             storage_dtype=args.storage_dtype)
    corrupt = store.cache.verify()  # damaged chunks are marked not done, so they are embedded again
    todo = store.missing(range(store.n_slices))
    progress = _Progress("embedding")
    store.compute(todo, progress=progress)
    progress.close()
    note = f" ({len(corrupt)} corrupt cached slices recomputed: {', '.join(map(str, corrupt))})" if corrupt else ""
    print(f"{store.n_slices - len(todo)} slices reused, {len(todo)} embedded -> {store.cache.path}{note}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="napari-sammed", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("convert-checkpoint", help="write a weights-only safetensors copy of a checkpoint")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("info", help="show what a checkpoint is (kind, size, sha256)")
    _add_model_args(p)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("embed", help="compute (or resume) the embedding cache of a volume")
    p.add_argument("image")
    p.add_argument("--cache-dir", required=True)
    p.add_argument("--axis", default="z", choices=["z", "y", "x"])
    p.add_argument("--storage-dtype", default="float32", choices=["float32", "float16"])
    _add_model_args(p)
    _add_window_args(p)
    p.set_defaults(func=cmd_embed)

    for register in _EXTRA_COMMANDS:
        register(sub)
    return parser


def cmd_demo(args) -> int:
    import napari

    from ._napari.demo import open_demo

    open_demo(args.checkpoint, args.sample)
    # The demo writes nothing, so SIGTERM may simply end it; raising inside Qt's event loop
    # would only print a traceback from napari's exception hook.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    napari.run()
    return 0


def _register_demo(sub) -> None:
    p = sub.add_parser("demo", help="open napari with a real CT (or MR) sample and the plugin docked")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--sample", choices=["ct", "mr"], default="ct")
    p.set_defaults(func=cmd_demo)


def cmd_samaug(args) -> int:
    from .core.engine.automatic_masks import AmgSettings
    from .core.jobs.samaug import run_samaug

    engine = _engine(args)
    settings = AmgSettings(points_per_side=args.points_per_side, pred_iou_thresh=args.pred_iou_thresh,
                           stability_score_thresh=args.stability_thresh)
    progress = _Progress("SAMAug")
    written = run_samaug(args.input, args.outdir, engine, parse_window(args.window), settings, progress)
    progress.close()
    print(f"wrote {len(written)} files to {args.outdir} ({engine.describe()['kind']})")
    return 0


def _register_samaug(sub) -> None:
    p = sub.add_parser("samaug", help="SAMAug prior maps for a 2D image, a folder of images or a volume")
    p.add_argument("input")
    p.add_argument("outdir")
    p.add_argument("--points-per-side", type=int, default=32)
    p.add_argument("--pred-iou-thresh", type=float, default=0.5)
    p.add_argument("--stability-thresh", type=float, default=None,
                   help="automatic-mask stability filter (default: 0.95, SAMAug; 0.8 for LiteMedSAM)")
    _add_model_args(p)
    _add_window_args(p)
    p.set_defaults(func=cmd_samaug)


def cmd_propagate(args) -> int:
    from .core.jobs.propagate import run_propagation
    from .core.volume.propagation import PropagationSettings

    settings = PropagationSettings(
        min_iou=args.min_iou, min_neighbour_iou=args.min_neighbour_iou, min_area=args.min_area,
        box_margin=args.box_margin, interior_points=args.interior_points, direction=args.direction,
        max_steps=args.max_steps)
    objects = parse_ids(args.objects, "--objects")
    engine = _engine(args)
    progress = _Progress("propagating")
    try:
        report = run_propagation(args.image, args.seeds, args.output, engine, parse_window(args.window),
                                 args.axis, settings, objects, args.cache_dir, args.overwrite, progress)
    finally:
        progress.close()
    print(f"wrote {report['output']} ({report['voxels_written']} voxels propagated, {engine.kind})")
    for object_id, info in sorted(report["objects"].items()):
        ends = ", ".join(f"{s['reason']} at {s['slice']}" for s in info["stops"]) or "volume ends"
        print(f"  object {object_id}: slices {info['first']}-{info['last']}, {info['propagated']} propagated; "
              f"stopped: {ends}")
    print("QC trace: " + ", ".join(str(p) for p in report["trace"]))
    return 0


def _register_propagate(sub) -> None:
    p = sub.add_parser("propagate", help="propagate seed masks through a volume, slice by slice",
                       description="IMAGE: NIfTI/TIFF/zarr/DICOM volume. SEEDS: a label volume with some "
                                   "annotated slices, or a JSON of prompts per object and slice. OUTPUT: "
                                   "labels written with the image's geometry, plus OUTPUT_qc.csv/.json.")
    p.add_argument("image")
    p.add_argument("seeds")
    p.add_argument("output", help=".nii.gz, .nii, .tif or .zarr")
    p.add_argument("--axis", default="z", choices=["z", "y", "x"])
    p.add_argument("--objects", default=None, help="comma-separated label ids (default: all)")
    p.add_argument("--direction", default="both", choices=["both", "forward", "backward"])
    p.add_argument("--min-iou", type=float, default=0.5, help="stop under this predicted IoU")
    p.add_argument("--min-neighbour-iou", type=float, default=0.6, help="stop under this IoU with the previous slice")
    p.add_argument("--min-area", type=int, default=4, help="pixels; smaller masks count as vanished")
    p.add_argument("--box-margin", type=float, default=None,
                   help="grow the previous slice's box by this fraction per side (default: the model's recipe)")
    p.add_argument("--interior-points", type=int, default=0)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--cache-dir", default=None, help="reuse/keep slice embeddings here")
    p.add_argument("--overwrite", action="store_true")
    _add_model_args(p)
    _add_window_args(p)
    p.set_defaults(func=cmd_propagate)


def _class_names(text: str | None) -> dict[int, str]:
    from .core.export.case import parse_class_names
    from .core.io.inputs import ClassNames, load_json

    if text and text.lower().endswith(".json"):
        return load_json(text, ClassNames, "class-names JSON file").as_dict()
    return parse_class_names(text)


def cmd_export(args) -> int:
    from .core.export import ExportOptions
    from .core.jobs.export import export_files
    from .core.volume.embeddings import axis_index

    options = ExportOptions(args.format, args.output, axis_index(args.axis), args.split, args.seed,
                            args.test_fraction, args.all_slices, args.split_components, args.dataset_id,
                            args.dataset_name, args.channel, args.include_image, args.append, args.overwrite)
    report = export_files(args.image, args.labels, options, args.case, _class_names(args.class_names),
                          parse_window(args.window), args.qc)
    print(report["summary"])
    return 0


def _register_export(sub) -> None:
    from .core.export import FORMATS

    p = sub.add_parser("export", help="export an image + labels as training data (SAM-Med2D, nnU-Net v2, stacks)",
                       description="IMAGE and LABELS: NIfTI/TIFF/zarr/DICOM (or PNG for 2D) of the same shape. "
                                   "OUTPUT: the SAM-Med2D dataset folder, the nnU-Net raw folder that holds "
                                   "DatasetNNN_Name, or the folder for stacks.")
    p.add_argument("image")
    p.add_argument("labels")
    p.add_argument("output")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--case", default=None, help="case name (default: the image file's name)")
    p.add_argument("--class-names", default=None, help="'1=spleen,5=liver' or a JSON file {id: name}")
    p.add_argument("--axis", default="z", choices=["z", "y", "x"], help="slice axis for SAM-Med2D")
    p.add_argument("--split", default="auto", choices=["auto", "train", "test"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--test-fraction", type=float, default=0.2)
    p.add_argument("--all-slices", action="store_true", help="also slices without labels (SAM-Med2D)")
    p.add_argument("--split-components", action="store_true", help="one mask file per connected part")
    p.add_argument("--dataset-id", type=int, default=1)
    p.add_argument("--dataset-name", default="Annotations")
    p.add_argument("--channel", default="CT", help="nnU-Net channel name (CT, MR, ...)")
    p.add_argument("--include-image", action="store_true", help="stacks: write the image too")
    p.add_argument("--qc", default=None, help="a propagation QC trace (.csv) to keep with the export")
    p.add_argument("--append", action="store_true", help="add this case to an existing dataset")
    p.add_argument("--overwrite", action="store_true", help="replace this case if it is already there")
    _add_window_args(p)
    p.set_defaults(func=cmd_export)


def cmd_evaluate(args) -> int:
    from .core.jobs.evaluate import evaluate, format_table, to_csv

    engine = _engine(args)
    modes = tuple(m.strip() for m in args.prompts.split(",") if m.strip())
    progress = _Progress("evaluating")
    try:
        scores = evaluate(args.dataset, engine, modes, args.seed, progress)
    finally:
        progress.close()
    sha = engine.describe().get("checkpoint_sha256")
    label = engine.label + (f" sha256 {sha[:12]}" if sha else "")
    print(format_table(scores, f"Dice (%) on {args.dataset}, {len(scores) // max(len(modes), 1)} masks, "
                               f"seed {args.seed} - {label}"))
    csv_text = to_csv(scores)
    if args.csv:
        from pathlib import Path

        Path(args.csv).write_text(csv_text)
        print(f"CSV: {args.csv}")
    else:
        print("\n" + csv_text, end="")
    return 0


def _register_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="SAM-Med2D test protocol (bbox, 1/3/5 points) on a dataset in its format")
    p.add_argument("dataset", help="folder with label2image_test.json (e.g. data_demo)")
    p.add_argument("--prompts", default="bbox,1pt,3pt,5pt")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--csv", default=None, help="write the CSV here instead of printing it")
    _add_model_args(p)
    p.set_defaults(func=cmd_evaluate)


def cmd_simulate(args) -> int:
    from .core.jobs.simulate import format_table, simulate_files, summary, to_csv

    classes = parse_ids(args.classes, "--classes")
    if args.clicks < 0:
        raise ValueError(f"--clicks {args.clicks}: give 0 or more")
    if args.csv and Path(args.csv).is_dir():
        raise ValueError(f"--csv {args.csv}: that is a folder; give a file name")
    if args.csv and Path(args.csv).exists() and not args.overwrite:
        raise FileExistsError(f"{args.csv} exists; pass --overwrite to replace it")
    engine = _engine(args)
    progress = _Progress("classes")
    try:
        report = simulate_files(args.image, args.labels, engine, parse_window(args.window), classes, args.clicks,
                                args.cache_dir, not args.from_scratch, progress)
    finally:
        progress.close()
    runs, window = report["runs"], report["window"]
    mode = "re-propagated from scratch" if args.from_scratch else "incremental 3D update"
    print(f"CVPR 2025 interactive protocol: box + {args.clicks} clicks, {len(runs)} classes, {engine.label}, "
          f"window {'none' if window is None else f'{window.low:g}..{window.high:g}'}, {mode}")
    print(format_table(runs))
    s = summary(runs)
    print(f"mean Dice after the box {s['dice_box']:.3f}, final {s['dice_final']:.3f}; DSC_AUC {s['dsc_auc']:.2f}; "
          f"final NSD {s['nsd_final']:.3f}; {s['seconds']:.2f} s per interaction")
    if args.csv:
        from .core.io.atomic import atomic_write

        text = to_csv(runs)
        atomic_write(args.csv, lambda tmp: Path(tmp).write_text(text))
        print(f"CSV: {args.csv}")
    return 0


def _register_simulate(sub) -> None:
    p = sub.add_parser("simulate", help="CVPR 2025 interactive 3D protocol (box + clicks) on your image and labels",
                       description="For each class of LABELS: a box on the reference's middle slice with its "
                                   "z-range, then simulated clicks at the centre of the largest error, each "
                                   "updating the 3D mask as the dock does. Prints Dice/NSD after every step, "
                                   "DSC_AUC and seconds per interaction.")
    p.add_argument("image", help="3D NIfTI/TIFF/zarr/DICOM volume")
    p.add_argument("labels", help="reference label volume of the same shape")
    p.add_argument("--classes", default=None, help="comma-separated label ids (default: every class present)")
    p.add_argument("--clicks", type=int, default=5, help="clicks after the box (default 5)")
    p.add_argument("--csv", default=None, help="write one row per class and step here")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --csv file")
    p.add_argument("--from-scratch", action="store_true",
                   help="re-propagate the whole object after every interaction (what other tools do)")
    p.add_argument("--cache-dir", default=None, help="reuse/keep slice embeddings here")
    _add_model_args(p)
    _add_window_args(p)
    p.set_defaults(func=cmd_simulate)


def cmd_batch(args) -> int:
    from .core.jobs.batch import ModelConfig, format_table, run_batch
    from .core.jobs.plan import load_plan

    plan = load_plan(args.plan)
    model = ModelConfig(args.checkpoint, args.kind, args.device, args.dtype, args.batch_size)
    result = run_batch(plan, args.outdir, model, args.cluster, args.scheduler)
    print(format_table(result.rows))
    failed = sum(r["status"] == "error" for r in result.rows)
    print(f"{len(result.rows) - failed} of {len(result.rows)} cases done, {failed} failed, "
          f"{result.seconds:.1f} s; summary: {result.summary}")
    return result.exit_code


def _register_batch(sub) -> None:
    p = sub.add_parser("batch", help="run a plan (propagate, SAMAug, export) over many volumes, locally or on dask",
                       description="PLAN: YAML or JSON with steps, cases (name, image, seeds) and an export block; "
                                   "paths relative to it. OUTDIR/<case>/ gets labels.nii.gz, qc.csv, samaug/; "
                                   "OUTDIR/export the dataset; OUTDIR/summary.csv one row per case. Finished "
                                   "cases are skipped on rerun. Exit 0: all cases done, 1: some failed, 2: bad plan.")
    p.add_argument("plan")
    p.add_argument("outdir")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--cluster", default=None, help="local:N - a dask LocalCluster of N worker processes")
    where.add_argument("--scheduler", default=None, help="tcp://HOST:PORT of a running dask scheduler")
    _add_model_args(p)
    p.set_defaults(func=cmd_batch)


_EXTRA_COMMANDS: list = [_register_demo, _register_samaug, _register_propagate, _register_export, _register_evaluate,
                         _register_simulate, _register_batch]


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that staging and temporary files are cleaned up."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated()


#: Exceptions that mean the input (files, arguments, disk) is wrong, not the program.
def _bad_input_types() -> tuple[type[BaseException], ...]:
    from .core.io.inputs import InputError
    from .core.model.checkpoints import CheckpointError
    from .core.model.lite_medsam import BundledWeightsError

    return (InputError, CheckpointError, BundledWeightsError, ValueError, OSError)


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 600 else text[:600] + " ..."


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. Bad input: one line ``napari-sammed <command>: error: <file>: <what>``
    and exit code 2. A bug: the traceback and a line asking to report it, exit code 1."""
    from .core.io.inputs import InputWarning

    args = build_parser().parse_args(argv)
    prog = f"napari-sammed {args.command}"

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, InputWarning):
            print(f"{prog}: warning: {_one_line(message)}", file=sys.stderr)
        else:
            sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

    previous = None
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread (an embedding host): keep its handler
        previous = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", InputWarning)
            warnings.showwarning = show
            return int(args.func(args) or 0)
    except Terminated:
        print(f"{prog}: error: terminated (SIGTERM); unfinished output was removed", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print(f"{prog}: error: interrupted; unfinished output was removed", file=sys.stderr)
        return 130
    except _bad_input_types() as error:
        print(f"{prog}: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except Exception:  # noqa: BLE001 - a bug: show everything, ask for a report
        traceback.print_exc()
        print(f"{prog}: internal error (a bug in napari-sammed, not a problem with your input); "
              "please report it with the traceback above and the command you ran", file=sys.stderr)
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
