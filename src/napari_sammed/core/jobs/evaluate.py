"""SAM-Med2D's official test protocol on a dataset in its format (``label2image_test.json``).

Per test mask, in the model's 256 x 256 frame: an image smaller than 256 on both sides is
zero-padded to 256 (centred), any other is nearest-resized to 256. ``bbox``: the box of the
mask's largest connected component, one decoder call. ``Npt``: one positive point drawn
uniformly from the mask, then N - 1 rounds that each add a point drawn uniformly from the error
region (positive where the object was missed, negative where the prediction spilled over),
sending all points so far with the previous low-res logits as mask prompt. Logits go back to
the original size (crop the pad, or bilinear resize) and Dice (logit > 0) is computed there.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from skimage.measure import label as connected_components

from ..engine.frame import ProtocolFrame, mask_box
from ..engine.slice_engine import Prediction, SliceEngine
from ..errors import InputError
from ..io.inputs import Sammed2dTest, load_json
from ..io.paths import dataset_entry
from ..io.read import read_image
from ..io.tables import text_table
from ..settings import PROMPT_MODES, EvaluateSettings
from ..volume.metrics import dice

FRAME = 256
@dataclass
class TestMask:
    """One test mask of a SAM-Med2D dataset, its image and class."""

    mask: Path
    image: Path
    class_name: str


@dataclass
class MaskScore:
    """Dice of one mask under one prompt mode."""

    mask: str
    class_name: str
    mode: str
    dice: float


def read_test_set(dataset: str | Path) -> list[TestMask]:
    """Entries of ``label2image_test.json``; paths are relative to the dataset folder's parent."""
    dataset = Path(dataset)
    index = dataset / "label2image_test.json"
    if not index.is_file():
        raise InputError(dataset, "no label2image_test.json: not a SAM-Med2D test set")
    pairs = load_json(index, Sammed2dTest)
    items = []
    for mask, image in pairs.items():
        mask_path, image_path = dataset_entry(dataset, mask, index), dataset_entry(dataset, image, index)
        for entry, p in ((mask, mask_path), (image, image_path)):
            if not p.is_file():
                raise InputError(index, f"lists {entry}, which does not exist")
        stem = image_path.stem
        name = mask_path.stem
        class_name = name[len(stem) + 1 : -4] if name.startswith(stem + "_") and len(name) > len(stem) + 5 else name
        items.append(TestMask(mask_path, image_path, class_name))
    if not items:
        raise InputError(index, "lists no masks")
    return items


def largest_component_box(mask: np.ndarray) -> np.ndarray:
    """(x0, y0, x1, y1) of the largest connected component (the first of equals, as the
    protocol's regionprops picks it)."""
    components = connected_components(mask.astype(np.uint8))
    sizes = np.bincount(components.ravel())
    sizes[0] = 0  # the background
    return mask_box(components == int(np.argmax(sizes)))


def _pick(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One (x, y) drawn uniformly from (row, col) pixel indices."""
    row, col = pixels[rng.integers(len(pixels))]
    return np.array([col, row], float)


def protocol_mask_prompt(engine, low_res_logits: np.ndarray) -> np.ndarray:
    """The protocol feeds sigmoid(previous logits) to every network (SAM baselines included)."""
    return engine.protocol_mask_prompt(low_res_logits)


def predict_mode(engine: SliceEngine, embedding, truth: np.ndarray, mode: str, rng: np.random.Generator) -> Prediction:
    """Run one prompt mode on one mask in the frame; returns the final prediction."""
    size = truth.shape
    if mode == "bbox":
        return engine.predict(embedding, size, box=largest_component_box(truth))
    rounds = int(mode.removesuffix("pt"))
    points = [_pick(np.argwhere(truth), rng)]
    labels = [1]
    prediction = engine.predict(embedding, size, np.array(points), np.array(labels))
    for _ in range(rounds - 1):
        errors = np.argwhere(prediction.mask != truth)
        if not len(errors):
            break
        point = _pick(errors, rng)
        points.append(point)
        labels.append(int(truth[int(point[1]), int(point[0])]))
        prediction = engine.predict(embedding, size, np.array(points), np.array(labels),
                                    mask_input=protocol_mask_prompt(engine, prediction.low_res_logits))
    return prediction


def evaluate(
    dataset: str | Path,
    engine: SliceEngine,
    settings: EvaluateSettings = EvaluateSettings(),
    progress: Callable[[int, int], None] | None = None,
) -> list[MaskScore]:
    """Dice of every test mask under every prompt mode (reproducible for a given seed)."""
    modes, seed = settings.modes, settings.seed
    items = read_test_set(dataset)
    scores: list[MaskScore] = []
    embedded_image, embedding, image_shape = None, None, None
    for n, item in enumerate(items):
        if item.image != embedded_image:  # the masks of one image share its embedding
            image = read_image(item.image, "RGB")
            image_shape = image.shape[:2]
            embedding = engine.embed(ProtocolFrame(*image_shape, FRAME).forward(image)[None])[0]
            embedded_image = item.image
        truth = read_image(item.mask, "L") > 127
        if truth.shape != image_shape:
            raise InputError(None, f"{item.mask.name} is {truth.shape}, its image {image_shape}")
        frame = ProtocolFrame(*truth.shape, FRAME)
        framed_truth = frame.forward(truth)
        for mode in modes:
            if not framed_truth.any():
                continue
            rng = np.random.default_rng([seed, n, PROMPT_MODES.index(mode) if mode in PROMPT_MODES else len(mode)])
            prediction = predict_mode(engine, embedding, framed_truth, mode, rng)
            logits = frame.back(prediction.logits)
            scores.append(MaskScore(item.mask.name, item.class_name, mode, dice(logits > 0, truth)))
        if progress is not None:
            progress(n + 1, len(items))
    if not scores:
        raise InputError(dataset, "every test mask is empty: nothing to score")
    return scores


def summarise(scores: list[MaskScore]) -> tuple[list[str], dict[str, dict[str, tuple[int, float]]]]:
    """-> (modes, {class or "overall": {mode: (n, mean Dice)}})."""
    modes = list(dict.fromkeys(s.mode for s in scores))
    table: dict[str, dict[str, list[float]]] = {}
    for s in scores:
        for key in (s.class_name, "overall"):
            table.setdefault(key, {}).setdefault(s.mode, []).append(s.dice)
    ordered = sorted(k for k in table if k != "overall") + ["overall"]
    return modes, {k: {m: (len(v), float(np.mean(v))) for m, v in table[k].items()} for k in ordered}


def format_table(scores: list[MaskScore], title: str = "") -> str:
    """Mean Dice (%) per class and prompt mode, as an aligned text table."""
    modes, table = summarise(scores)
    rows = [[key, next(iter(row.values()))[0], *(f"{100 * row[m][1]:.2f}" if m in row else "" for m in modes)]
            for key, row in table.items()]
    return (f"{title}\n" if title else "") + text_table(["class", "n", *modes], rows, rule_before_last=True)


def to_csv(scores: list[MaskScore]) -> str:
    """Mean Dice (0-100) per class and prompt mode, plus ``overall``."""
    modes, table = summarise(scores)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["class", "n", *modes])
    for key, row in table.items():
        n = next(iter(row.values()))[0]
        writer.writerow([key, n, *(f"{100 * row[m][1]:.2f}" if m in row else "" for m in modes)])
    return out.getvalue()
