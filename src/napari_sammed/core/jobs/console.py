"""What a terminal shows while a job runs: status lines and progress bars, both on stderr.

Jobs report what they are doing through the ``napari_sammed`` logger (``log.info("reading
...")``); :func:`status_lines` prints those records as ``<prog>: <message>`` so the command
line says what happens during the minutes before the first bar. The dock may attach its own
handler to the same logger.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ..errors import InputError

LOGGER = "napari_sammed"

DESCRIPTION = """\
Annotate medical volumes with SAM-family models from the command line: propagate a few
annotated slices through a CT or MR volume, make SAMAug prior maps, export training data
(SAM-Med2D, nnU-Net v2), and measure a model (SAM-Med2D test protocol, interactive 3D
protocol). The default model is LiteMedSAM (bundled, runs on the CPU); --checkpoint takes
SAM-Med2D, SAM or MedSAM weights.

Volumes are windowed to 8 bits as the models were trained: a CT in Hounsfield units gets
ct-soft-tissue (W400/L40), anything else the 0.5-99.5 percentile window; --window changes
it, and every command prints the window it used. Status lines and progress go to stderr,
results to stdout. Exit codes: 0 done, 2 bad input (one line saying what), 1 a bug.

Memory: a file whose voxels need more memory than the budget is refused before it is read.
The budget is the memory available to the process (free memory, container and ulimit -v
limits); the environment variable NAPARI_SAMMED_MEMORY_BUDGET sets it (bytes, or 512M, 8G).
DICOM is decoded slice by slice into int16 (int32 or float32 where the rescale needs it)."""

EXAMPLES = """\
examples:
  napari-sammed propagate ct.nii.gz seeds.nii.gz liver.nii.gz     # label slices -> 3D labels
  napari-sammed propagate ct.nii.gz prompts.json out.nii.gz --objects 5 --window ct-abdomen
  napari-sammed samaug image.png maps/                            # SAMAug prior maps
  napari-sammed export ct.nii.gz labels.nii.gz nnUNet_raw --format nnunet --channel CT
  napari-sammed simulate ct.nii.gz labels.nii.gz --clicks 5       # box + 5 clicks per class
  napari-sammed info --checkpoint sam-med2d_b.pth                 # what a checkpoint is

'napari-sammed COMMAND --help' describes each command."""


class _TqdmHandler(logging.Handler):
    """Writes through ``tqdm.write`` so a status line never tears a running bar."""

    def __init__(self, prog: str) -> None:
        super().__init__(logging.INFO)
        self.prog = prog

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        tqdm.write(f"{self.prog}: {record.getMessage()}", file=sys.stderr)


@contextmanager
def status_lines(prog: str) -> Iterator[None]:
    """Print the package's INFO records on stderr as ``<prog>: <message>`` inside the block."""
    logger = logging.getLogger(LOGGER)
    handler, level = _TqdmHandler(prog), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def status(message: str) -> None:
    """One status line (from the CLI itself rather than a job)."""
    logging.getLogger(LOGGER).info(message)


class Progress:
    """A tqdm bar on stderr for ``progress(done, total)`` callbacks, opened at the first call
    (so errors print without one).

    The bar starts at the first reported count: callers report cumulative counts, often
    starting above 0 (seed slices, cached embeddings, resumed files), and a bar that started at
    0 would count those as done in the first millisecond - tens of thousands "per second"."""

    def __init__(self, desc: str, unit: str = "slice") -> None:
        self.desc, self.unit, self.bar = desc, unit, None

    def __call__(self, done: int, total: int) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=total, initial=done, desc=self.desc, unit=self.unit, file=sys.stderr)
            return
        self.bar.total = total
        self.bar.update(done - self.bar.n)  # update(), not n=: tqdm's rate follows update()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown after every option's help (not None/False: the help says what "none"
    means); descriptions and examples keep their lines."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:  # not 0, which "in" counts as False
            return action.help
        return super()._get_help_string(action)


def add_parser(sub, name: str, help: str, description: str | None = None) -> argparse.ArgumentParser:
    """A subcommand whose help shows every option's default."""
    return sub.add_parser(name, help=help, description=description or help, formatter_class=HelpFormatter)


def add_model_args(p: argparse.ArgumentParser) -> None:
    """--checkpoint, --kind, --device, --dtype, --batch-size."""
    p.add_argument("--checkpoint", default=None,
                   help="SAM-Med2D / SAM / MedSAM / LiteMedSAM checkpoint (.pth, .safetensors); "
                        "none: the bundled LiteMedSAM (medical, box prompts)")
    p.add_argument("--kind", default=None,
                   help="force a model kind (e.g. medsam, lite-medsam); weight-free: the intensity "
                        "segmenter (no network)")
    p.add_argument("--device", default="auto", help="auto (CUDA, else MPS, else CPU), cpu, cuda, cuda:N, mps")
    p.add_argument("--dtype", default="fp32", help="image encoder precision: fp32, bf16, fp16 (GPU)")
    p.add_argument("--batch-size", type=int, default=4, help="slices embedded per model call")


def add_window_args(p: argparse.ArgumentParser) -> None:
    """--window (default auto: :func:`~napari_sammed.core.io.windowing.default_window`)."""
    p.add_argument("--window", default="auto",
                   help="intensity window: ct-soft-tissue, ct-abdomen, ct-lung, ct-bone, ct-brain, percentile "
                        "(0.5-99.5), LOW,HIGH, or auto (ct-soft-tissue for a CT in Hounsfield units, else "
                        "percentile; 8-bit data as it is)")


def load_engine(args):
    """The engine for the model options, saying what it loads and how long that took."""
    import time

    from ..engine.families import describe_default, load_model, takes_no_checkpoint
    from ..engine.slice_engine import SliceEngine

    started = time.perf_counter()
    what = args.kind if takes_no_checkpoint(args.kind) else (args.checkpoint or describe_default())
    status(f"loading model {what} ...")
    model = load_model(args.checkpoint, device=args.device, dtype=args.dtype, kind=args.kind)
    engine = SliceEngine(model, batch_size=args.batch_size)
    status(f"model {engine.label} ready on {engine.describe().get('device', 'cpu')} "
           f"({time.perf_counter() - started:.1f} s)")
    return engine


def parse_window(text: str | None):
    """``--window``: a preset name, or ``LOW,HIGH`` -> (low, high)."""
    if text and "," in text:
        try:
            low, high = (float(v) for v in text.split(","))
        except ValueError:
            raise InputError(None, f"--window {text!r}: give a preset name or two numbers LOW,HIGH") from None
        return (low, high)
    return text


def parse_ids(text: str | None, option: str) -> list[int] | None:
    """``"1,5"`` -> [1, 5] (for ``--objects``, ``--classes``)."""
    if not text:
        return None
    try:
        ids = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputError(None, f"{option} {text!r}: give label ids as comma-separated integers, e.g. 1,5") from None
    if any(i <= 0 for i in ids):
        raise InputError(None, f"{option} {text!r}: label ids start at 1")
    return ids


class bar(Progress):
    """A :class:`Progress` bar closed when its ``with`` block ends (also on errors)."""

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *_exc_info) -> None:
        self.close()


def arg(*flags: str, **options) -> tuple[tuple[str, ...], dict]:
    """One ``add_argument`` call, as a :class:`Command` lists it."""
    return flags, options


@dataclass(frozen=True)
class Command:
    """One subcommand: name, function, help, arguments, option groups (``"model"``, ``"window"``
    or a settings dataclass), and whether its model options are checked only when it needs a model."""

    name: str
    func: Callable[[argparse.Namespace], int]
    help: str
    args: tuple = ()
    groups: tuple = ()
    description: str | None = None
    model_free: bool = False
    either: tuple = ()  # arguments of which at most one may be given


    def register(self, sub) -> None:
        p = add_parser(sub, self.name, self.help, self.description)
        for flags, options in self.args:
            p.add_argument(*flags, **options)
        group = p.add_mutually_exclusive_group() if self.either else None
        for flags, options in self.either:
            group.add_argument(*flags, **options)
        for group in self.groups:
            if group == "model":
                add_model_args(p)
            elif group == "window":
                add_window_args(p)
            else:
                from .settings import add_options

                add_options(p, group)
        p.set_defaults(func=self.func, model_free=self.model_free)
