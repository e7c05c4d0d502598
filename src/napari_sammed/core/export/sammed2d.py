"""SAM-Med2D training format, as in ``shared/data/sammed2d/data_demo`` and the official loader.

``<dataset>/images/<stem>.png`` (8-bit RGB, grey replicated), ``<dataset>/masks/<stem>_<class>_<NNN>.png``
(one object per file, 0/255), ``image2label_train.json`` ({image: [masks]}, training cases) and
``label2image_test.json`` ({mask: image}, test cases). JSON paths start with the dataset folder's
name: they are relative to the folder that *contains* the dataset. A case goes to train or test
as a whole, by a seeded hash of its name, so appending cases later keeps earlier decisions.
Which files are a case's is recorded in ``napari_sammed_provenance.json`` (:mod:`.members`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from ..errors import InputError, NeedsOption
from ..io.inputs import Provenance, Sammed2dTest, Sammed2dTrain
from ..io.paths import check_entries, dataset_entry, entry_prefix, inside
from ..io.windowing import apply_window
from .case import ExportCase
from .dataset import PROVENANCE_JSON, check_dataset_folder, record_case
from .members import check_new_name, owned_files
from .members import claim as claim_file
from .staging import Staging, read_json, writing

TRAIN_JSON, TEST_JSON = "image2label_train.json", "label2image_test.json"


def is_test_case(case: str, seed: int, test_fraction: float) -> bool:
    """Seeded, order-independent split: the same case always lands on the same side."""
    digest = hashlib.sha256(f"{seed}:{case}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < test_fraction


def _png(path: Path, array: np.ndarray) -> None:
    from skimage.io import imsave

    imsave(str(path), array, check_contrast=False)


def _slices(case: ExportCase, axis: int, samaug_images: bool = False):
    """(stem, image slice uint8 (grey or RGB), label slice) for every slice of the case; with
    ``samaug_images`` the image is SAMAug's augmented RGB (the priors added to channels 1 and 2)."""
    if samaug_images and (case.priors is None or (case.labels.ndim == 3 and axis != 0)):
        raise InputError(None, "SAMAug images need the case's SAMAug priors, computed along z")
    if case.labels.ndim == 2:
        image = case.image if case.rgb else apply_window(case.image, case.window)
        yield case.name, case.priors.augmented if samaug_images else image, case.labels
        return
    for k in range(case.labels.shape[axis]):
        image = case.priors.augmented[k] if samaug_images else apply_window(np.take(case.image, k, axis=axis),
                                                                             case.window)
        yield f"{case.name}_{k}", image, np.take(case.labels, k, axis=axis)


def _objects(case: ExportCase, plane: np.ndarray, split_components: bool):
    """(class name, binary mask) for every object on a slice."""
    for label in [int(v) for v in np.unique(plane) if v != 0]:
        mask = plane == label
        if split_components:
            parts, n = ndi.label(mask)
            for i in range(1, n + 1):
                yield case.name_of(label), parts == i
        else:
            yield case.name_of(label), mask


def export_sammed2d(
    case: ExportCase,
    dataset: str | Path,
    axis: int = 0,
    split: str = "auto",
    seed: int = 0,
    test_fraction: float = 0.2,
    all_slices: bool = False,
    split_components: bool = False,
    append: bool = False,
    overwrite: bool = False,
    samaug_images: bool = False,
) -> dict:
    """Write (or add) ``case`` to the SAM-Med2D dataset folder ``dataset``; returns a summary.

    ``samaug_images``: the images are SAMAug's augmented RGB (``case.priors``); masks and JSONs
    are what they would be without it. The dataset is locked from reading its index to the end.
    """
    case.validate()
    if split not in ("auto", "train", "test"):
        raise InputError(None, f"split must be auto, train or test; got {split!r}")
    dataset = Path(dataset)
    with writing(dataset):
        return _export(case, dataset, axis, split, seed, test_fraction, all_slices, split_components, append,
                       overwrite, samaug_images)


def _export(case: ExportCase, dataset: Path, axis: int, split: str, seed: int, test_fraction: float,
            all_slices: bool, split_components: bool, append: bool, overwrite: bool, samaug_images: bool) -> dict:
    prefix = entry_prefix(dataset)  # index entries are "<dataset name>/<path in the dataset>"
    entry = len(prefix)
    train = read_json(dataset / TRAIN_JSON, {}, Sammed2dTrain)
    test = read_json(dataset / TEST_JSON, {}, Sammed2dTest)
    check_entries(dataset, (e for image, masks in train.items() for e in (image, *masks)), dataset / TRAIN_JSON)
    check_entries(dataset, (e for pair in test.items() for e in pair), dataset / TEST_JSON)
    check_dataset_folder(dataset, (TRAIN_JSON, TEST_JSON), "SAM-Med2D", case.name, append, overwrite)
    provenance = read_json(dataset / PROVENANCE_JSON, {"cases": {}}, Provenance)
    cases = provenance["cases"]
    check_new_name(dataset, case.name, cases)
    owned = owned_files(case.name, cases, train, test, prefix, dataset / PROVENANCE_JSON)
    if (owned or case.name in cases) and not overwrite:
        raise NeedsOption(f"case {case.name!r} is already in {dataset}; pass {{overwrite}} to replace it")
    # The index entries an overwrite drops, and the files it may delete, must all be in this dataset.
    dropped = {k for k in train if k[entry:] in owned}
    dropped_test = {m for m, v in test.items() if m[entry:] in owned or v[entry:] in owned}
    for image in dropped:
        for name in (image, *train[image]):
            dataset_entry(dataset, name, dataset / TRAIN_JSON)
    for mask in dropped_test:
        for name in (mask, test[mask]):
            dataset_entry(dataset, name, dataset / TEST_JSON)
    for relative in owned:
        inside(dataset, relative, dataset / PROVENANCE_JSON)
    train = {k: v for k, v in train.items() if k not in dropped}
    test = {m: v for m, v in test.items() if m not in dropped_test}
    listed = {e[entry:] for image, masks in train.items() for e in (image, *masks)}
    listed |= {e[entry:] for pair in test.items() for e in pair}
    to_test = split == "test" or (split == "auto" and is_test_case(case.name, seed, test_fraction))

    def claim(relative: str) -> str:
        claim_file(dataset, relative, case.name, owned, listed, cases)
        written.append(relative)
        return relative

    written: list[str] = []
    with Staging(dataset, replace=overwrite) as staging:
        images, masks = 0, 0
        for stem, image, plane in _slices(case, axis, samaug_images):
            if not plane.any() and not all_slices:
                continue
            rgb = image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=-1)
            image_key = prefix + claim(f"images/{stem}.png")
            _png(staging.path(f"images/{stem}.png"), rgb)
            images += 1
            mask_keys, counters = [], {}
            for name, mask in _objects(case, plane, split_components):
                index = counters[name] = counters.get(name, -1) + 1
                if index > 999:
                    raise InputError(None, f"more than 1000 '{name}' objects on {stem}: the format numbers them with 3 digits")
                mask_file = claim(f"masks/{stem}_{name}_{index:03d}.png")
                _png(staging.path(mask_file), (mask * 255).astype(np.uint8))
                mask_keys.append(prefix + mask_file)
            masks += len(mask_keys)
            if to_test:
                test.update(dict.fromkeys(mask_keys, image_key))
            else:
                train[image_key] = mask_keys
        staging.write_json(TRAIN_JSON, train)
        staging.write_json(TEST_JSON, test)
        details = {"format": "SAM-Med2D", "axis": "zyx"[axis] if case.labels.ndim == 3 else None,
                   "split": "test" if to_test else "train", "seed": seed, "test_fraction": test_fraction,
                   "samaug_images": samaug_images, "files": sorted(written)}
        record_case(staging, dataset, case, details, provenance)
        staging.remove(sorted(owned - set(details["files"])))  # deleted once the new index is in place
        staging.commit()
    return {"dataset": dataset, "images": images, "masks": masks, "split": "test" if to_test else "train"}
