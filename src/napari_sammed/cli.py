"""``napari-sammed`` command line: argument parsing around the Qt-free core (``core.jobs``)."""

from __future__ import annotations

import argparse
import signal
import sys
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path

from .core.jobs.console import (
    DESCRIPTION,
    EXAMPLES,
    Progress,
    add_amg_args,
    add_model_args,
    add_parser,
    add_window_args,
    amg_settings,
    load_engine,
    parse_ids,
    parse_window,
    status,
    status_lines,
)


def _check_model_args(args) -> None:
    """Device, dtype and batch size refused in one line before any file is read."""
    from .core.model.load import check_device, resolve_dtype

    if getattr(args, "scheduler", None) is None:  # a remote cluster's workers have their own devices
        check_device(args.device)
    resolve_dtype(args.dtype)
    if args.batch_size < 1:
        raise ValueError(f"--batch-size {args.batch_size}: give 1 or more")


def cmd_convert(args) -> int:
    from .core.engine.families import convert_checkpoint
    from .core.io.write import check_output
    from .core.model.checkpoints import sha256_path

    check_output(args.output, args.overwrite, (".safetensors",))
    check_output(sha256_path(args.output), args.overwrite)
    sha = convert_checkpoint(args.input, args.output, overwrite=args.overwrite)
    print(f"wrote {args.output}\nsha256 {sha}")
    return 0


def cmd_info(args) -> int:
    import json

    from .core.engine.families import model_info

    print(json.dumps(model_info(args.checkpoint, args.kind), indent=2))
    return 0


def cmd_embed(args) -> int:
    from .core.io.read import read_volume
    from .core.io.windowing import describe_window, resolve_window
    from .core.volume.embeddings import VolumeEmbeddings

    status(f"reading {args.image}")
    volume = read_volume(args.image)
    if volume.data.ndim != 3:
        raise ValueError(f"embed needs a 3D volume, got shape {volume.data.shape}")
    window = resolve_window(volume.data, parse_window(args.window))
    status(describe_window(window))
    engine = load_engine(args)
    store = VolumeEmbeddings(engine, volume.data, window, args.axis, cache_dir=args.cache_dir,
                             storage_dtype=args.storage_dtype)
    corrupt = store.cache.verify()  # damaged chunks are marked not done, so they are embedded again
    todo = store.missing(range(store.n_slices))
    status(f"embedding {len(todo)} of {store.n_slices} slices")
    progress = Progress("embedding")
    store.compute(todo, progress=progress)
    progress.close()
    note = f" ({len(corrupt)} corrupt cached slices recomputed: {', '.join(map(str, corrupt))})" if corrupt else ""
    print(f"{store.n_slices - len(todo)} slices reused, {len(todo)} embedded -> {store.cache.path}{note}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="napari-sammed", description=DESCRIPTION, epilog=EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = add_parser(sub, "convert-checkpoint", "write a weights-only safetensors copy of a checkpoint "
                    "(loads without unpickling; OUTPUT.sha256 beside it)")
    p.add_argument("input", help="checkpoint to read (.pth, official SAM-Med2D layout included)")
    p.add_argument("output", help="the .safetensors file to write")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.set_defaults(func=cmd_convert)

    p = add_parser(sub, "info", "show what a checkpoint is: kind, file size, sha256, format, parameters "
                    "(without loading the model)")
    add_model_args(p)
    p.set_defaults(func=cmd_info, model_free=True)

    p = add_parser(sub, "embed", "compute (or resume) the embedding cache of a volume")
    p.add_argument("image", help="3D NIfTI/TIFF/zarr/DICOM volume")
    p.add_argument("--cache-dir", required=True, help="folder of the embedding cache (created; reused on reruns)")
    p.add_argument("--axis", default="z", choices=["z", "y", "x"], help="slice axis")
    p.add_argument("--storage-dtype", default="float32", choices=["float32", "float16"],
                   help="precision of the cached embeddings")
    add_model_args(p)
    add_window_args(p)
    p.set_defaults(func=cmd_embed)

    for register in _EXTRA_COMMANDS:
        register(sub)
    return parser


def cmd_demo(args) -> int:
    import napari

    from ._napari.demo import open_demo

    open_demo(args.checkpoint, args.sample)
    # The demo writes nothing, so SIGTERM (or SIGHUP) may simply end it; raising inside Qt's
    # event loop would only print a traceback from napari's exception hook.
    for signum in _ENDING:
        signal.signal(signum, signal.SIG_DFL)
    napari.run()
    return 0


def _register_demo(sub) -> None:
    p = add_parser(sub, "demo", "open napari with a real CT (or MR) sample and the plugin docked")
    p.add_argument("--checkpoint", default=None, help="model checkpoint; none: the bundled LiteMedSAM")
    p.add_argument("--sample", choices=["ct", "mr"], default="ct", help="which sample volume")
    p.set_defaults(func=cmd_demo, model_free=True)


def cmd_samaug(args) -> int:
    from .core.io.read import is_zarr
    from .core.io.write import check_output
    from .core.jobs.samaug import run_samaug

    check_output(args.outdir, folder=True)
    engine = load_engine(args)
    settings = amg_settings(args)
    folder = Path(args.input).is_dir() and not is_zarr(args.input)
    progress = Progress("SAMAug", "image" if folder else "slice")
    try:
        written = run_samaug(args.input, args.outdir, engine, parse_window(args.window), settings, progress)
    finally:
        progress.close()
    print(f"wrote {len(written)} files to {args.outdir} ({engine.describe()['kind']})")
    return 0


def _register_samaug(sub) -> None:
    p = add_parser(sub, "samaug", "SAMAug prior maps for a 2D image, a folder of images or a volume",
                    "SAMAug prior maps: OUTDIR/<stem>_seg_prior.tif, _boundary_prior.tif, _augmented.tif "
                    "(+ _augmented.png for 2D) and <stem>_samaug.json. Existing maps are skipped (resume).")
    p.add_argument("input", help="PNG/JPEG/TIFF image, a folder of them, or a NIfTI/TIFF/zarr volume")
    p.add_argument("outdir", help="folder for the maps (created)")
    add_amg_args(p)
    add_model_args(p)
    add_window_args(p)
    p.set_defaults(func=cmd_samaug)


def cmd_propagate(args) -> int:
    from .core.io.write import VOLUME_SUFFIXES, check_output
    from .core.jobs.propagate import format_report, run_propagation, trace_files
    from .core.volume.propagation import PropagationSettings

    check_output(args.output, args.overwrite, VOLUME_SUFFIXES)
    for side in trace_files(args.output):
        check_output(side, args.overwrite)
    settings = PropagationSettings(
        min_iou=args.min_iou, min_neighbour_iou=args.min_neighbour_iou, min_area=args.min_area,
        box_margin=args.box_margin, interior_points=args.interior_points, direction=args.direction,
        max_steps=args.max_steps)
    objects = parse_ids(args.objects, "--objects")
    engine = load_engine(args)
    progress = Progress("propagating")
    try:
        report = run_propagation(args.image, args.seeds, args.output, engine, parse_window(args.window),
                                 args.axis, settings, objects, args.cache_dir, args.overwrite, progress)
    finally:
        progress.close()
    print(format_report(report, engine.kind))
    return 0


def _register_propagate(sub) -> None:
    from .core.jobs.propagate import FILES_HELP

    p = add_parser(sub, "propagate", "propagate seed masks through a volume, slice by slice", FILES_HELP)
    p.add_argument("image", help="the volume")
    p.add_argument("seeds", help="label volume or prompts JSON (see above)")
    p.add_argument("output", help="labels to write: .nii.gz, .nii, .tif, .tiff or .zarr")
    p.add_argument("--axis", default="z", choices=["z", "y", "x"], help="slice axis")
    p.add_argument("--objects", default=None, help="comma-separated label ids (none: all)")
    p.add_argument("--direction", default="both", choices=["both", "forward", "backward"],
                   help="propagate towards higher slices, lower ones, or both")
    p.add_argument("--min-iou", type=float, default=0.5, help="stop under this predicted IoU")
    p.add_argument("--min-neighbour-iou", type=float, default=0.6, help="stop under this IoU with the previous slice")
    p.add_argument("--min-area", type=int, default=4, help="pixels; smaller masks count as vanished")
    p.add_argument("--box-margin", type=float, default=None,
                   help="grow the previous slice's box by this fraction per side (none: the model's recipe)")
    p.add_argument("--interior-points", type=int, default=0, help="positive points inside the previous mask")
    p.add_argument("--max-steps", type=int, default=None, help="slices per front at most (none: no limit)")
    p.add_argument("--cache-dir", default=None, help="reuse/keep slice embeddings here")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    add_model_args(p)
    add_window_args(p)
    p.set_defaults(func=cmd_propagate)


def cmd_export(args) -> int:
    from .core.export import ExportOptions
    from .core.io.write import check_output
    from .core.jobs.export import SamaugSource, class_names_from, export_files
    from .core.volume.embeddings import axis_index

    check_output(args.output, folder=True)
    options = ExportOptions(args.format, args.output, axis_index(args.axis), args.split, args.seed,
                            args.test_fraction, args.all_slices, args.split_components, args.dataset_id,
                            args.dataset_name, args.channel, args.include_image, args.append, args.overwrite,
                            args.samaug_channels, args.samaug_images)
    priors_from = None
    if options.needs_priors:
        _check_model_args(args)
        priors_from = SamaugSource(lambda: load_engine(args), amg_settings(args), args.samaug_dir)
    report = export_files(args.image, args.labels, options, args.case, class_names_from(args.class_names),
                          parse_window(args.window), args.qc, priors_from=priors_from)
    print(report["summary"])
    return 0


def _register_export(sub) -> None:
    from .core.export import FORMATS

    p = add_parser(sub, "export", "export an image + labels as training data (SAM-Med2D, nnU-Net v2, stacks)",
                    "IMAGE and LABELS: NIfTI/TIFF/zarr/DICOM (or PNG for 2D) of the same shape. "
                    "OUTPUT: the SAM-Med2D dataset folder, the nnU-Net raw folder that holds "
                    "DatasetNNN_Name, or the folder for stacks.")
    p.add_argument("image", help="the image")
    p.add_argument("labels", help="its label volume (0 background, class ids from 1)")
    p.add_argument("output", help="dataset folder (see above)")
    p.add_argument("--format", required=True, choices=FORMATS, help="dataset format")
    p.add_argument("--case", default=None, help="case name (none: the image file's name)")
    p.add_argument("--class-names", default=None, help="'1=spleen,5=liver' or a JSON file {id: name}")
    p.add_argument("--axis", default="z", choices=["z", "y", "x"], help="slice axis for SAM-Med2D")
    p.add_argument("--split", default="auto", choices=["auto", "train", "test"],
                   help="SAM-Med2D split; auto: a seeded hash of the case name")
    p.add_argument("--seed", type=int, default=0, help="seed of the auto split")
    p.add_argument("--test-fraction", type=float, default=0.2, help="share of cases the auto split tests on")
    p.add_argument("--all-slices", action="store_true", help="also slices without labels (SAM-Med2D)")
    p.add_argument("--split-components", action="store_true", help="one mask file per connected part")
    p.add_argument("--dataset-id", type=int, default=1, help="nnU-Net dataset number (DatasetNNN_Name)")
    p.add_argument("--dataset-name", default="Annotations", help="dataset name")
    p.add_argument("--channel", default="CT", help="nnU-Net channel name (CT, MR, ...)")
    p.add_argument("--include-image", action="store_true", help="stacks: write the image too")
    p.add_argument("--qc", default=None, help="a propagation QC trace (.csv) to keep with the export")
    p.add_argument("--append", action="store_true", help="add this case to an existing dataset")
    p.add_argument("--overwrite", action="store_true", help="replace this case if it is already there")
    p.add_argument("--samaug-channels", action="store_true",
                   help="nnU-Net: SAMAug's segmentation and boundary priors as channels _0001 and _0002")
    p.add_argument("--samaug-images", action="store_true",
                   help="SAM-Med2D: SAMAug's augmented RGB images (priors in channels 1 and 2) as the images")
    p.add_argument("--samaug-dir", default=None,
                   help="reuse the maps `napari-sammed samaug` wrote here when the same model, settings "
                        "and window made them (else they are computed)")
    add_window_args(p)
    add_amg_args(p)
    add_model_args(p)  # only for the SAMAug options
    p.set_defaults(func=cmd_export, model_free=True)


def cmd_evaluate(args) -> int:
    from .core.jobs.evaluate import evaluate, format_table, to_csv

    if args.csv:
        from .core.io.write import check_output

        check_output(args.csv, overwrite=True)
    engine = load_engine(args)
    modes = tuple(m.strip() for m in args.prompts.split(",") if m.strip())
    progress = Progress("evaluating", "mask")
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
        Path(args.csv).write_text(csv_text)
        print(f"CSV: {args.csv}")
    else:
        print("\n" + csv_text, end="")
    return 0


def _register_evaluate(sub) -> None:
    p = add_parser(sub, "evaluate", "SAM-Med2D test protocol (bbox, 1/3/5 points) on a dataset in its format")
    p.add_argument("dataset", help="folder with label2image_test.json (e.g. data_demo)")
    p.add_argument("--prompts", default="bbox,1pt,3pt,5pt", help="prompt modes, comma-separated")
    p.add_argument("--seed", type=int, default=0, help="seed of the point sampling")
    p.add_argument("--csv", default=None, help="write the CSV here instead of printing it")
    add_model_args(p)
    p.set_defaults(func=cmd_evaluate)


def cmd_simulate(args) -> int:
    from .core.io.write import check_output
    from .core.jobs.simulate import format_report, simulate_files, to_csv

    classes = parse_ids(args.classes, "--classes")
    if args.clicks < 0:
        raise ValueError(f"--clicks {args.clicks}: give 0 or more")
    if args.csv:
        check_output(args.csv, args.overwrite)
    engine = load_engine(args)
    progress = Progress("classes", "class")
    try:
        report = simulate_files(args.image, args.labels, engine, parse_window(args.window), classes, args.clicks,
                                args.cache_dir, not args.from_scratch, progress)
    finally:
        progress.close()
    print(format_report(report, args.clicks, engine.label, args.from_scratch))
    if args.csv:
        from .core.io.atomic import atomic_write

        text = to_csv(report["runs"])
        atomic_write(args.csv, lambda tmp: Path(tmp).write_text(text))
        print(f"CSV: {args.csv}")
    return 0


def _register_simulate(sub) -> None:
    p = add_parser(sub, "simulate", "CVPR 2025 interactive 3D protocol (box + clicks) on your image and labels",
                    "For each class of LABELS: a box on the reference's middle slice with its "
                    "z-range, then simulated clicks at the centre of the largest error, each "
                    "updating the 3D mask as the dock does. Prints Dice/NSD after every step, "
                    "DSC_AUC and seconds per interaction.")
    p.add_argument("image", help="3D NIfTI/TIFF/zarr/DICOM volume")
    p.add_argument("labels", help="reference label volume of the same shape")
    p.add_argument("--classes", default=None, help="comma-separated label ids (none: every class present)")
    p.add_argument("--clicks", type=int, default=5, help="clicks after the box")
    p.add_argument("--csv", default=None, help="write one row per class and step here")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --csv file")
    p.add_argument("--from-scratch", action="store_true",
                   help="re-propagate the whole object after every interaction (what other tools do)")
    p.add_argument("--cache-dir", default=None, help="reuse/keep slice embeddings here")
    add_model_args(p)
    add_window_args(p)
    p.set_defaults(func=cmd_simulate)


def cmd_batch(args) -> int:
    from .core.io.write import check_output
    from .core.jobs.batch import ModelConfig, format_table, run_batch
    from .core.jobs.plan import load_plan

    plan = load_plan(args.plan)
    check_output(args.outdir, folder=True)
    model = ModelConfig(args.checkpoint, args.kind, args.device, args.dtype, args.batch_size)
    result = run_batch(plan, args.outdir, model, args.cluster, args.scheduler)
    print(format_table(result.rows))
    failed = sum(r["status"] == "error" for r in result.rows)
    print(f"{len(result.rows) - failed} of {len(result.rows)} cases done, {failed} failed, "
          f"{result.seconds:.1f} s; summary: {result.summary}")
    return result.exit_code


def _register_batch(sub) -> None:
    p = add_parser(sub, "batch", "run a plan (propagate, SAMAug, export) over many volumes, locally or on dask",
                    "PLAN: YAML or JSON with steps, cases (name, image, seeds) and an export block; "
                    "paths relative to it. OUTDIR/<case>/ gets labels.nii.gz, qc.csv, samaug/; "
                    "OUTDIR/export the dataset; OUTDIR/summary.csv one row per case. Finished "
                    "cases are skipped on rerun when their done.json and the outputs it lists are intact; "
                    "symbolic links in OUTDIR are refused. Exit 0: all cases done, 1: some failed, 2: bad "
                    "plan, OUTDIR, --cluster or --scheduler (nothing started).")
    p.add_argument("plan", help="the plan (.yaml, .yml or .json)")
    p.add_argument("outdir", help="output folder (created)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--cluster", default=None,
                       help="local:N - a dask LocalCluster of N worker processes (at most one per core and "
                            "per 2 GiB of the memory budget)")
    where.add_argument("--scheduler", default=None,
                       help="tcp://HOST:PORT (or tls://) of a running dask scheduler; given up when it does "
                            "not answer within dask's distributed.comm.timeouts.connect (30 s by default)")
    add_model_args(p)
    p.set_defaults(func=cmd_batch)


_EXTRA_COMMANDS: list = [_register_demo, _register_samaug, _register_propagate, _register_export, _register_evaluate,
                         _register_simulate, _register_batch]


class Terminated(BaseException):
    """SIGTERM or SIGHUP (a closed terminal), raised in the main thread so that staging and
    temporary files are cleaned up."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _on_sigterm(signum, frame) -> None:
    raise Terminated(signum)


#: Signals that end a command as SIGTERM does; SIGHUP does not exist on Windows.
_ENDING = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


#: Exceptions that mean the input (files, arguments, disk) is wrong, not the program.
def _bad_input_types() -> tuple[type[BaseException], ...]:
    from .core.io.inputs import InputError
    from .core.model.checkpoints import CheckpointError
    from .core.model.lite_medsam import BundledWeightsError

    return (InputError, CheckpointError, BundledWeightsError, ValueError, OSError)


def _one_line(error: BaseException) -> str:
    text = error.for_cli() if hasattr(error, "for_cli") else str(error)  # options as --append, --overwrite
    text = " ".join(text.split()) or type(error).__name__
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

    previous = {}
    try:  # a signal ignored on purpose (nohup ignores SIGHUP) stays ignored
        previous = {signum: signal.signal(signum, _on_sigterm) for signum in _ENDING
                    if signal.getsignal(signum) is not signal.SIG_IGN}
    except ValueError:  # not the main thread (an embedding host): keep its handlers
        previous = {}
    try:
        with warnings.catch_warnings(), status_lines(prog):
            warnings.simplefilter("always", InputWarning)
            warnings.showwarning = show
            if hasattr(args, "device") and not getattr(args, "model_free", False):
                _check_model_args(args)  # before any file is read or model loaded
            return int(args.func(args) or 0)
    except Terminated as stop:
        print(f"{prog}: error: terminated ({signal.Signals(stop.signum).name}); unfinished output was removed",
              file=sys.stderr)
        return 128 + stop.signum
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
        for signum, handler in previous.items():
            signal.signal(signum, handler)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
