"""One validation layer for the files users hand us: a one-line error type, JSON/CSV schemas.

Every JSON or CSV the CLI (or an export into an existing dataset) reads goes through
:func:`load_json` / :func:`read_csv_rows` with a pydantic model, so a malformed file is refused
with ``InputError("<file>: <what is wrong>")`` (the CLI prints it on one line, exit code 2)
instead of surfacing as a ``KeyError`` or ``AttributeError`` deep inside the code.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ..errors import InputError, InputWarning, NeedsOption  # noqa: F401  (re-exported)
from ..qc_vocabulary import FLAGS, SOURCES, STOP_REASONS


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


Finite = Annotated[float, AfterValidator(_finite)]
NonNegativeInt = Annotated[int, Field(ge=0)]


def describe_validation(error: ValidationError) -> str:
    """The first problem pydantic found, as ``at objects.5.15.box: <message>`` (+ how many more)."""
    problems = error.errors(include_url=False)
    first = problems[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    message = first.get("msg", "invalid")
    text = f"at {where}: {message}" if where else message
    return text + (f" (+{len(problems) - 1} more problems)" if len(problems) > 1 else "")


def validate(path: str | Path, schema: Any, payload: Any) -> Any:
    """``payload`` checked against ``schema`` (a model class or a type); InputError naming ``path``."""
    try:
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            return schema.model_validate(payload)
        return TypeAdapter(schema).validate_python(payload)
    except ValidationError as error:
        raise InputError(path, describe_validation(error)) from None


def read_text(path: str | Path, what: str = "file") -> str:
    """A UTF-8 text file's content; a missing or unreadable file is an :class:`InputError`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, f"no such {what}")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(path, f"not a text {what} (not UTF-8)") from None
    except OSError as error:
        raise InputError(path, f"cannot read: {error.strerror or error}") from None


def load_json(path: str | Path, schema: Any, what: str = "JSON file") -> Any:
    """Read ``path`` as JSON and validate it; every failure is one ``InputError`` line."""
    text = read_text(path, what)
    try:
        payload = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as error:
        raise InputError(path, f"not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})") from None
    except ValueError as error:  # NaN / Infinity literals
        raise InputError(path, str(error)) from None
    except RecursionError:  # [[[[...]]]] tens of thousands deep
        raise InputError(path, "not usable JSON: nested too deeply") from None
    return validate(path, schema, payload)


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def read_csv_rows(path: str | Path, schema: type[BaseModel], text: str | None = None) -> list:
    """Rows of a CSV with a header, each validated; errors name the file and the line."""
    text = read_text(path, "CSV file") if text is None else text
    reader = csv.DictReader(io.StringIO(text))
    wanted = [name for name, f in schema.model_fields.items() if f.is_required()]
    header = reader.fieldnames or []
    missing = [c for c in wanted if c not in header]
    if missing:
        raise InputError(path, f"missing column(s) {', '.join(missing)} (header: {','.join(header) or 'none'})")
    rows = []
    for line, values in enumerate(reader, start=2):
        if None in values:
            raise InputError(path, f"line {line}: more fields than the header has")
        cleaned = {k: (None if v == "" else v) for k, v in values.items() if k in schema.model_fields}
        try:
            rows.append(schema.model_validate(cleaned))
        except ValidationError as error:
            raise InputError(path, f"line {line}: {describe_validation(error)}") from None
    return rows


# ---- schemas ---------------------------------------------------------------------------------

class PromptSpec(BaseModel):
    """One object's prompt on one slice: ``box`` [x0, y0, x1, y1] and/or ``points`` [[x, y], ...]."""

    model_config = ConfigDict(extra="forbid")

    box: Annotated[list[Finite], Field(min_length=4, max_length=4)] | None = None
    points: Annotated[list[Annotated[list[Finite], Field(min_length=2, max_length=2)]], Field(min_length=1)] | None = None
    labels: list[Annotated[int, Field(ge=0, le=1)]] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> PromptSpec:
        if self.box is None and self.points is None:
            raise ValueError("a prompt needs a box or points")
        if self.box is not None and not (self.box[0] < self.box[2] and self.box[1] < self.box[3]):
            raise ValueError(f"box {self.box} must be [x0, y0, x1, y1] with x0 < x1 and y0 < y1")
        if self.labels is not None and (self.points is None or len(self.labels) != len(self.points)):
            raise ValueError("labels need one entry (1 positive, 0 negative) per point")
        return self


IntKey = Annotated[str, AfterValidator(lambda s: _int_key(s))]
#: The largest object or label id: labels are written as unsigned 32-bit integers at most.
MAX_ID = 2**32 - 1


def _int_key(text: str) -> str:
    if not text.strip().isdigit():
        raise ValueError(f"key {text!r} must be a non-negative integer")
    return text


#: ``propagate --help``: the files, and the prompts JSON exactly as :class:`PromptFile` checks it.
FILES_HELP = """\
IMAGE: NIfTI/TIFF/zarr/DICOM volume. OUTPUT: labels with the image's geometry (.nii.gz, .nii,
.tif, .tiff, .zarr), plus OUTPUT_qc.csv/.json (one row per object and slice).

SEEDS is a label volume of the image's shape (every slice where an object has voxels is one of
its seeds), or a JSON file of prompts per object and slice:

  {"objects": {"5": {"15": {"box": [x0, y0, x1, y1]},
                     "22": {"points": [[120, 80], [130, 95]], "labels": [1, 0]}}},
   "stops": {"5": [[30, 125, 90]], "0": [[3]]}}

objects: object id -> slice index -> a prompt with a "box" [x0, y0, x1, y1] and/or "points"
[[x, y], ...] with "labels" (1 positive, 0 negative; default all 1). Coordinates are pixels of
the slice along --axis (x = column, y = row). stops (optional): object id -> [[slice]] stops
every front of the object there, [[slice, x, y]] only fronts whose box holds the point; object
"0" means every object."""


class PromptFile(BaseModel):
    """``{"objects": {id: {slice: prompt}}, "stops": {id: [[slice] | [slice, x, y]]}}``."""

    model_config = ConfigDict(extra="forbid")

    objects: dict[IntKey, dict[IntKey, PromptSpec]]
    stops: dict[IntKey, list[Annotated[list[Finite], Field(min_length=1, max_length=3)]]] = {}

    @field_validator("objects")
    @classmethod
    def _some_prompts(cls, objects: dict) -> dict:
        if not any(objects.values()):
            raise ValueError("no prompts: give at least one object with one prompted slice")
        if "0" in objects or any(int(k) == 0 for k in objects):
            raise ValueError("object id 0 is the background; use ids from 1")
        too_large = [k for k in objects if int(k) > MAX_ID]
        if too_large:
            raise ValueError(f"object id {too_large[0]} is over {MAX_ID}, the largest label id (32 bits)")
        return objects

    @field_validator("stops")
    @classmethod
    def _stop_entries(cls, stops: dict) -> dict:
        for object_id, entries in stops.items():
            for entry in entries:
                if len(entry) == 2:
                    raise ValueError(f"stop of object {object_id}: use [slice] or [slice, x, y], got {entry}")
                if entry[0] < 0 or entry[0] != int(entry[0]):
                    raise ValueError(f"stop of object {object_id}: slice {entry[0]} is not a slice index")
        return stops


class ClassNames(RootModel[dict[IntKey, Annotated[str, Field(min_length=1)]]]):
    """``{"1": "spleen", "5": "liver"}``."""

    @field_validator("root")
    @classmethod
    def _no_background(cls, names: dict) -> dict:
        if any(int(k) == 0 for k in names):
            raise ValueError("label 0 is the background and takes no class name")
        return names

    def as_dict(self) -> dict[int, str]:
        return {int(k): v for k, v in self.root.items()}


class TraceCsvRow(BaseModel):
    """One row of a propagation QC trace (``qc.TraceRow``) as read back from its CSV."""

    object_id: NonNegativeInt
    slice: NonNegativeInt
    source: str
    predicted_iou: Finite | None = None
    neighbour_iou: Finite | None = None
    area: NonNegativeInt
    direction: Annotated[int, Field(ge=-1, le=1)] = 0
    stop_reason: str | None = None
    outside_seed_range: Annotated[float, Field(ge=0, le=1)] | None = None  # absent in older traces
    flag: str | None = None

    @field_validator("source", "stop_reason", "flag")
    @classmethod
    def _known_word(cls, value: str | None, info: ValidationInfo) -> str | None:
        words = {"source": SOURCES, "stop_reason": STOP_REASONS, "flag": FLAGS}[info.field_name]
        if value not in words and (value or info.field_name == "source"):  # "": no stop, no flag
            *most, last = words
            raise ValueError(f"{info.field_name} {value!r} is not {', '.join(most)} or {last}")
        return value


# SAM-Med2D dataset index files and our provenance file; nnU-Net's dataset.json.
Sammed2dTrain = dict[str, list[str]]
Sammed2dTest = dict[str, str]


class Provenance(BaseModel):
    """``napari_sammed_provenance.json`` of a dataset: one record per case."""

    model_config = ConfigDict(extra="allow")

    cases: dict[str, dict[str, Any]] = {}


class NnunetDatasetJson(BaseModel):
    """The parts of an nnU-Net ``dataset.json`` that an append relies on."""

    model_config = ConfigDict(extra="allow")

    channel_names: dict[IntKey, str]
    labels: dict[str, NonNegativeInt]
    numTraining: NonNegativeInt = 0  # noqa: N815 - nnU-Net's key
    file_ending: str = ".nii.gz"

    @field_validator("labels")
    @classmethod
    def _background(cls, labels: dict) -> dict:
        if labels.get("background") != 0:
            raise ValueError("labels must map background to 0")
        return labels
