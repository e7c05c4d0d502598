"""``napari-sammed`` command line: argument parsing around the Qt-free core (``core.jobs``).

Every subcommand is one row of :data:`COMMANDS`: its function, help, arguments and the option
groups it takes (model, window, or a job's settings dataclass, whose fields become options).
"""

from __future__ import annotations

import argparse
import signal
import sys
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path

from .core.export.entry import ExportOptions
from .core.jobs.console import (
    DESCRIPTION,
    EXAMPLES,
    Command,
    arg,
    bar,
    load_engine,
    parse_ids,
    parse_window,
    status,
    status_lines,
)
from .core.jobs.settings import from_args
from .core.settings import AmgSettings, EvaluateSettings, PropagationSettings, SimulateSettings


def _check_model_args(args) -> None:
    """Device, dtype and batch size refused in one line before any file is read."""
    from .core.errors import InputError
    from .core.model.load import check_device, resolve_dtype

    if getattr(args, "scheduler", None) is None:  # a remote cluster's workers have their own devices
        check_device(args.device)
    resolve_dtype(args.dtype)
    if args.batch_size < 1:
        raise InputError(None, f"--batch-size {args.batch_size}: give 1 or more")


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
    from .core.jobs.embed import check_volume, embed_file

    status(f"reading {args.image}")
    volume = read_volume(args.image)  # before the model loads: a bad file costs no model load
    check_volume(volume, args.image)
    engine = load_engine(args)
    with bar("embedding") as progress:
        report = embed_file(args.image, engine, args.cache_dir, parse_window(args.window), args.axis,
                            args.storage_dtype, progress, volume=volume)
    print(report.summary())
    return 0


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


def cmd_samaug(args) -> int:
    from .core.io.read import is_zarr
    from .core.io.write import check_output
    from .core.jobs.samaug import run_samaug

    settings = from_args(AmgSettings, args)
    check_output(args.outdir, folder=True)
    engine = load_engine(args)
    folder = Path(args.input).is_dir() and not is_zarr(args.input)
    with bar("SAMAug", "image" if folder else "slice") as progress:
        written = run_samaug(args.input, args.outdir, engine, parse_window(args.window), settings, progress)
    print(f"wrote {len(written)} files to {args.outdir} ({engine.describe()['kind']})")
    return 0


def cmd_propagate(args) -> int:
    from .core.io.write import VOLUME_SUFFIXES, check_output
    from .core.jobs.propagate import format_report, run_propagation, trace_files

    check_output(args.output, args.overwrite, VOLUME_SUFFIXES)
    for side in trace_files(args.output):
        check_output(side, args.overwrite)
    settings = from_args(PropagationSettings, args)
    objects = parse_ids(args.objects, "--objects")
    engine = load_engine(args)
    with bar("propagating") as progress:
        report = run_propagation(args.image, args.seeds, args.output, engine, parse_window(args.window),
                                 args.axis, settings, objects, args.cache_dir, args.overwrite, progress)
    print(format_report(report, engine.kind))
    return 0


def cmd_export(args) -> int:
    from .core.io.write import check_output
    from .core.jobs.export import SamaugSource, class_names_from, export_files

    check_output(args.output, folder=True)
    options = from_args(ExportOptions, args, folder=args.output)
    priors_from = None
    if options.needs_priors:
        _check_model_args(args)
        priors_from = SamaugSource(lambda: load_engine(args), from_args(AmgSettings, args), args.samaug_dir)
    report = export_files(args.image, args.labels, options, args.case, class_names_from(args.class_names),
                          parse_window(args.window), args.qc, priors_from=priors_from)
    print(report.summary)
    return 0


def cmd_evaluate(args) -> int:
    from .core.jobs.evaluate import evaluate, format_table, to_csv

    settings = from_args(EvaluateSettings, args)
    if args.csv:
        from .core.io.write import check_output

        check_output(args.csv, args.overwrite)
    engine = load_engine(args)
    with bar("evaluating", "mask") as progress:
        scores = evaluate(args.dataset, engine, settings, progress)
    sha = engine.describe().get("checkpoint_sha256")
    label = engine.label + (f" sha256 {sha[:12]}" if sha else "")
    print(format_table(scores, f"Dice (%) on {args.dataset}, {len(scores) // len(settings.modes)} masks, "
                               f"seed {settings.seed} - {label}"))
    csv_text = to_csv(scores)
    if args.csv:
        from .core.io.atomic import atomic_write

        atomic_write(args.csv, lambda tmp: Path(tmp).write_text(csv_text))
        print(f"CSV: {args.csv}")
    else:
        print("\n" + csv_text, end="")
    return 0


def cmd_simulate(args) -> int:
    from .core.io.write import check_output
    from .core.jobs.simulate import format_report, simulate_files, to_csv

    settings = from_args(SimulateSettings, args)
    classes = parse_ids(args.classes, "--classes")
    if args.csv:
        check_output(args.csv, args.overwrite)
    engine = load_engine(args)
    with bar("classes", "class") as progress:
        report = simulate_files(args.image, args.labels, engine, parse_window(args.window), classes, settings,
                                args.cache_dir, progress)
    print(format_report(report, engine.label))
    if args.csv:
        from .core.io.atomic import atomic_write

        text = to_csv(report.runs)
        atomic_write(args.csv, lambda tmp: Path(tmp).write_text(text))
        print(f"CSV: {args.csv}")
    return 0


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


# ---- the subcommands -----------------------------------------------------------------------
AXIS = arg("--axis", default="z", choices=["z", "y", "x"], help="slice axis")
CACHE_DIR = arg("--cache-dir", default=None, help="reuse/keep slice embeddings here")
OVERWRITE = arg("--overwrite", action="store_true", help="replace OUTPUT if it exists")


def _commands() -> list[Command]:
    from .core.io.inputs import FILES_HELP

    return [
        Command("convert-checkpoint", cmd_convert, "write a weights-only safetensors copy of a checkpoint "
                "(loads without unpickling; OUTPUT.sha256 beside it)", (
                    arg("input", help="checkpoint to read (.pth, official SAM-Med2D layout included)"),
                    arg("output", help="the .safetensors file to write"),
                    arg("--overwrite", action="store_true", help="replace OUTPUT if it exists"))),
        Command("info", cmd_info, "show what a checkpoint is: kind, file size, sha256, format, parameters "
                "(without loading the model)", groups=("model",), model_free=True),
        Command("embed", cmd_embed, "compute (or resume) the embedding cache of a volume", (
            arg("image", help="3D NIfTI/TIFF/zarr/DICOM volume"),
            arg("--cache-dir", required=True, help="folder of the embedding cache (created; reused on reruns)"),
            AXIS,
            arg("--storage-dtype", default="float32", choices=["float32", "float16"],
                help="precision of the cached embeddings")), ("model", "window")),
        Command("demo", cmd_demo, "open napari with a real CT (or MR) sample and the plugin docked", (
            arg("--checkpoint", default=None, help="model checkpoint; none: the bundled LiteMedSAM"),
            arg("--sample", choices=["ct", "mr"], default="ct", help="which sample volume")), model_free=True),
        Command("samaug", cmd_samaug, "SAMAug prior maps for a 2D image, a folder of images or a volume", (
            arg("input", help="PNG/JPEG/TIFF image, a folder of them, or a NIfTI/TIFF/zarr volume"),
            arg("outdir", help="folder for the maps (created)")), (AmgSettings, "model", "window"),
            "SAMAug prior maps: OUTDIR/<stem>_seg_prior.tif, _boundary_prior.tif, _augmented.tif "
            "(+ _augmented.png for 2D) and <stem>_samaug.json. Existing maps are skipped (resume)."),
        Command("propagate", cmd_propagate, "propagate seed masks through a volume, slice by slice", (
            arg("image", help="the volume"),
            arg("seeds", help="label volume or prompts JSON (see above)"),
            arg("output", help="labels to write: .nii.gz, .nii, .tif, .tiff or .zarr"),
            AXIS, arg("--objects", default=None, help="comma-separated label ids (none: all)"),
            CACHE_DIR, OVERWRITE), (PropagationSettings, "model", "window"), FILES_HELP),
        Command("export", cmd_export, "export an image + labels as training data (SAM-Med2D, nnU-Net v2, stacks)", (
            arg("image", help="the image"),
            arg("labels", help="its label volume (0 background, class ids from 1)"),
            arg("output", help="dataset folder (see above)"),
            arg("--case", default=None, help="case name (none: the image file's name)"),
            arg("--class-names", default=None, help="'1=spleen,5=liver' or a JSON file {id: name}"),
            arg("--qc", default=None, help="a propagation QC trace (.csv) to keep with the export"),
            arg("--samaug-dir", default=None,
                help="reuse the maps `napari-sammed samaug` wrote here when the same model, settings "
                     "and window made them (else they are computed)")),
            (ExportOptions, "window", AmgSettings, "model"),  # the model only for the SAMAug options
            "IMAGE and LABELS: NIfTI/TIFF/zarr/DICOM volumes of the same shape. "
            "OUTPUT: the SAM-Med2D dataset folder, the nnU-Net raw folder that holds "
            "DatasetNNN_Name, or the folder for stacks.", model_free=True),
        Command("evaluate", cmd_evaluate, "SAM-Med2D test protocol (bbox, 1/3/5 points) on a dataset in its format", (
            arg("dataset", help="folder with label2image_test.json (e.g. data_demo)"),
            arg("--csv", default=None, help="write the CSV here instead of printing it"),
            arg("--overwrite", action="store_true", help="replace an existing --csv file")), (EvaluateSettings, "model")),
        Command("simulate", cmd_simulate, "CVPR 2025 interactive 3D protocol (box + clicks) on your image and labels", (
            arg("image", help="3D NIfTI/TIFF/zarr/DICOM volume"),
            arg("labels", help="reference label volume of the same shape"),
            arg("--classes", default=None, help="comma-separated label ids (none: every class present)"),
            arg("--csv", default=None, help="write one row per class and step here"),
            arg("--overwrite", action="store_true", help="replace an existing --csv file"),
            CACHE_DIR), (SimulateSettings, "model", "window"),
            "For each class of LABELS: a box on the reference's middle slice with its "
            "z-range, then simulated clicks at the centre of the largest error, each "
            "updating the 3D mask as the dock does. Prints Dice/NSD after every step, "
            "DSC_AUC and seconds per interaction."),
        Command("batch", cmd_batch, "run a plan (propagate, SAMAug, export) over many volumes, locally or on dask", (
            arg("plan", help="the plan (.yaml, .yml or .json)"),
            arg("outdir", help="output folder (created)"),
            ), ("model",),
            "PLAN: YAML or JSON with steps, cases (name, image, seeds) and an export block; "
            "paths relative to it. OUTDIR/<case>/ gets labels.nii.gz, qc.csv, samaug/; "
            "OUTDIR/export the dataset; OUTDIR/summary.csv one row per case. Finished "
            "cases are skipped on rerun when their done.json and the outputs it lists are intact; "
            "symbolic links in OUTDIR are refused. Exit 0: all cases done, 1: some failed, 2: bad "
            "plan, OUTDIR, --cluster or --scheduler (nothing started).", either=(
            arg("--cluster", default=None,
                help="local:N - a dask LocalCluster of N worker processes (at most one per core and "
                     "per 2 GiB of the memory budget)"),
            arg("--scheduler", default=None,
                help="tcp://HOST:PORT (or tls://) of a running dask scheduler; given up when it does "
                     "not answer within dask's distributed.comm.timeouts.connect (30 s by default)"))),
    ]


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="napari-sammed", description=DESCRIPTION, epilog=EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in _commands():
        command.register(sub)
    return parser


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


def _is_bad_input(error: BaseException) -> bool:
    """Whether ``error`` says the input (files, arguments, disk) is wrong rather than the program."""
    from .core.jobs.errors import is_input_error

    return is_input_error(error)


def _one_line(error: BaseException) -> str:
    from .core.io.error_text import squeezed

    text = error.for_cli() if hasattr(error, "for_cli") else str(error)  # options as --append, --overwrite
    return squeezed(text, 600) or type(error).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. Bad input: one line ``napari-sammed <command>: error: <file>: <what>``
    and exit code 2. A bug: the traceback and a line asking to report it, exit code 1."""
    from .core.errors import InputWarning

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
    except Exception as error:  # noqa: BLE001 - bad input: one line; a bug: everything, and a request
        if _is_bad_input(error):
            print(f"{prog}: error: {_one_line(error)}", file=sys.stderr)
            return 2
        traceback.print_exc()
        print(f"{prog}: internal error (a bug in napari-sammed, not a problem with your input); "
              "please report it with the traceback above and the command you ran", file=sys.stderr)
        return 1
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
