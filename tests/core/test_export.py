"""Export round trips on the real CT sample: SAM-Med2D format, nnU-Net v2, stacks; bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from napari_sammed._sample_data import DATA, ORGAN_NAMES
from napari_sammed.core.export import ExportCase, export_nnunet, export_sammed2d, export_stack
from napari_sammed.core.export import sammed2d as sammed2d_module
from napari_sammed.core.io.read import read_dicom_series, read_nifti, read_volume
from napari_sammed.core.io.windowing import apply_window, resolve_window
from tests.conftest import DATA_DEMO, displayed
from tests.core.test_io import write_dicom_series

ORGANS = {1: "spleen", 2: "kidney_right", 3: "kidney_left", 5: "liver"}


@pytest.fixture(scope="module")
def ct_case() -> ExportCase:
    volume = read_nifti(DATA / "example_ct_sm.nii.gz")
    seg = read_nifti(DATA / "example_seg.nii.gz")
    labels = np.where(np.isin(seg.data, list(ORGANS)), seg.data, 0).astype(np.uint8)
    return ExportCase("ct001", volume.data, labels, volume.layer_metadata(), ORGAN_NAMES,
                      resolve_window(volume.data, "ct-abdomen"), sources=[volume.source, seg.source])


def copy_case(case: ExportCase, name: str) -> ExportCase:
    return ExportCase(name, case.image, case.labels, case.meta, case.class_names, case.window)


def read_sammed2d(dataset: Path) -> dict[str, dict[str, np.ndarray]]:
    """An independent reader following the official loader: JSON paths are relative to the
    dataset folder's parent, masks are 0/255 PNGs named <image stem>_<class>_<NNN>.png.
    Returns {image stem: {class: union of its masks}} from both JSON files."""
    root = dataset.parent
    pairs = []
    for image, masks in json.loads((dataset / "image2label_train.json").read_text()).items():
        pairs += [(m, image) for m in masks]
    pairs += list(json.loads((dataset / "label2image_test.json").read_text()).items())
    out: dict[str, dict[str, np.ndarray]] = {}
    for mask_path, image_path in pairs:
        stem = Path(image_path).stem
        name = Path(mask_path).name
        match = re.fullmatch(re.escape(stem) + r"_(.+)_(\d{3})\.png", name)
        assert match, name
        mask = np.asarray(Image.open(root / mask_path))
        assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 255}
        slot = out.setdefault(stem, {})
        slot[match[1]] = slot.get(match[1], np.zeros(mask.shape, bool)) | (mask == 255)
    return out


def test_sammed2d_round_trip_equals_reference(tmp_path, ct_case):
    summary = export_sammed2d(ct_case, tmp_path / "ct_demo")
    dataset = tmp_path / "ct_demo"
    labelled = [k for k in range(ct_case.labels.shape[0]) if ct_case.labels[k].any()]
    assert summary["images"] == len(labelled)
    read_back = read_sammed2d(dataset)
    assert sorted(read_back) == sorted(f"ct001_{k}" for k in labelled)
    for k in labelled:
        for label, name in ORGANS.items():
            expected = ct_case.labels[k] == label
            got = read_back[f"ct001_{k}"].get(name, np.zeros_like(expected))
            np.testing.assert_array_equal(got, expected)
        image = np.asarray(Image.open(dataset / "images" / f"ct001_{k}.png"))
        np.testing.assert_array_equal(image[..., 0], apply_window(ct_case.image[k], ct_case.window))


def test_sammed2d_layout_mirrors_data_demo(tmp_path, ct_case):
    export_sammed2d(ct_case, tmp_path / "mine", split="test")
    export_sammed2d(copy_case(ct_case, "ct002"), tmp_path / "mine", split="train", append=True)
    for name in ("image2label_train.json", "label2image_test.json"):
        demo = json.loads((DATA_DEMO / name).read_text())
        mine = json.loads((tmp_path / "mine" / name).read_text())
        assert type(mine) is type(demo)
        for key, value in list(demo.items())[:1] + list(mine.items())[:1]:
            prefix = key.split("/")[0]
            assert prefix in ("data_demo", "mine") and key.split("/")[1] in ("images", "masks")
            assert isinstance(value, list if name.startswith("image2label") else str)
    demo_image = Image.open(next((DATA_DEMO / "images").glob("*.png")))
    demo_mask = Image.open(next((DATA_DEMO / "masks").glob("*.png")))
    mine_image = Image.open(next((tmp_path / "mine" / "images").glob("*.png")))
    mine_mask = Image.open(next((tmp_path / "mine" / "masks").glob("*.png")))
    assert (mine_image.mode, mine_mask.mode) == (demo_image.mode, demo_mask.mode) == ("RGB", "L")
    # The official loader opens every listed path relative to the dataset folder's parent.
    for path in json.loads((tmp_path / "mine" / "label2image_test.json").read_text()):
        assert (tmp_path / path).is_file()


def test_split_is_by_case_seeded_and_stable(tmp_path, ct_case):
    decisions = {}
    for i in range(12):
        case = copy_case(ct_case, f"case{i:02d}")
        case.labels = ct_case.labels[10:12]
        case.image = ct_case.image[10:12]
        decisions[case.name] = export_sammed2d(case, tmp_path / "ds", seed=3, test_fraction=0.5, append=i > 0)["split"]
    train = json.loads((tmp_path / "ds" / "image2label_train.json").read_text())
    test = json.loads((tmp_path / "ds" / "label2image_test.json").read_text())
    train_cases = {Path(k).stem.rsplit("_", 1)[0] for k in train}
    test_cases = {Path(v).stem.rsplit("_", 1)[0] for v in test.values()}
    assert not train_cases & test_cases  # never slices of one case on both sides
    assert train_cases == {c for c, s in decisions.items() if s == "train"}
    assert 0 < len(test_cases) < 12
    again = export_sammed2d(copy_case(ct_case, "case05"), tmp_path / "other", seed=3, test_fraction=0.5)
    assert again["split"] == decisions["case05"]  # the seed decides, not the order


def test_append_and_overwrite_keep_the_json_consistent(tmp_path, ct_case):
    dataset = tmp_path / "ds"
    export_sammed2d(ct_case, dataset, split="train")
    before = (dataset / "image2label_train.json").read_text()
    with pytest.raises(FileExistsError, match="append"):
        export_sammed2d(copy_case(ct_case, "ct002"), dataset)
    with pytest.raises(FileExistsError, match="already in"):
        export_sammed2d(ct_case, dataset, append=True)
    assert (dataset / "image2label_train.json").read_text() == before
    export_sammed2d(copy_case(ct_case, "ct002"), dataset, split="train", append=True)
    train = json.loads((dataset / "image2label_train.json").read_text())
    assert {k.split("/")[-1].rsplit("_", 1)[0] for k in train} == {"ct001", "ct002"}
    smaller = copy_case(ct_case, "ct001")
    smaller.labels = np.where(ct_case.labels == 5, 5, 0).astype(np.uint8)
    export_sammed2d(smaller, dataset, split="train", append=True, overwrite=True)
    train = json.loads((dataset / "image2label_train.json").read_text())
    ct001_masks = [m for k, v in train.items() if "/ct001_" in k for m in v]
    assert ct001_masks and all("_liver_" in m for m in ct001_masks)
    on_disk = {p.name for p in (dataset / "masks").glob("ct001_*.png")}
    assert on_disk == {Path(m).name for m in ct001_masks}  # the replaced case left no stale files
    provenance = json.loads((dataset / "napari_sammed_provenance.json").read_text())
    assert set(provenance["cases"]) == {"ct001", "ct002"}


def test_nnunet_round_trip_is_bit_exact(tmp_path, ct_case):
    summary = export_nnunet(ct_case, tmp_path, 7, "Abdomen", channel_name="CT")
    folder = tmp_path / "Dataset007_Abdomen"
    source = nib.load(str(DATA / "example_ct_sm.nii.gz"))
    image = nib.load(str(folder / "imagesTr" / "ct001_0000.nii.gz"))
    np.testing.assert_array_equal(np.asarray(image.dataobj), np.asarray(source.dataobj))
    assert image.get_data_dtype() == source.get_data_dtype()
    assert np.array_equal(image.affine, source.affine)
    assert image.header.get_zooms() == source.header.get_zooms()
    for code in ("qform_code", "sform_code"):
        assert int(image.header[code]) == int(source.header[code])
    np.testing.assert_array_equal(image.header.get_qform(), source.header.get_qform())
    labels = nib.load(str(folder / "labelsTr" / "ct001.nii.gz"))
    assert np.array_equal(labels.affine, source.affine) and labels.get_data_dtype() == np.uint8
    values = displayed(folder / "labelsTr" / "ct001.nii.gz")
    table = json.loads((folder / "dataset.json").read_text())["labels"]
    for source_id, name in ORGANS.items():  # remapped to consecutive values, by name
        np.testing.assert_array_equal(values == table[name], ct_case.labels == source_id)
    assert summary["mapping"] == {1: 1, 2: 2, 3: 3, 5: 4}
    validate_nnunet_dataset(folder)


def validate_nnunet_dataset(folder: Path) -> None:
    """The dataset.json fields and file naming nnU-Net v2 documents (dataset_format.md)."""
    info = json.loads((folder / "dataset.json").read_text())
    assert {"channel_names", "labels", "numTraining", "file_ending"} <= set(info)
    assert all(k.isdigit() for k in info["channel_names"])
    assert info["labels"]["background"] == 0
    assert sorted(info["labels"].values()) == list(range(len(info["labels"])))  # consecutive
    cases = sorted(p.name[: -len(info["file_ending"])] for p in (folder / "labelsTr").iterdir())
    assert info["numTraining"] == len(cases)
    for case in cases:
        for channel in info["channel_names"]:
            assert (folder / "imagesTr" / f"{case}_{int(channel):04d}{info['file_ending']}").is_file()
        values = np.unique(np.asarray(nib.load(str(folder / "labelsTr" / f"{case}{info['file_ending']}")).dataobj))
        assert set(values.tolist()) <= set(info["labels"].values())


def test_nnunet_append_extends_the_label_table(tmp_path, ct_case):
    export_nnunet(ct_case, tmp_path, 8, "Grow")
    second = copy_case(ct_case, "ct002")
    second.labels = np.where(ct_case.labels == 5, 9, ct_case.labels).astype(np.uint8)  # liver under id 9 ...
    second.class_names = {**ORGAN_NAMES, 9: "liver", 2: "right kidney"}  # ... and a new name for id 2
    with pytest.raises(FileExistsError, match="append"):
        export_nnunet(second, tmp_path, 8, "Grow")
    summary = export_nnunet(second, tmp_path, 8, "Grow", append=True)
    folder = tmp_path / "Dataset008_Grow"
    table = json.loads((folder / "dataset.json").read_text())["labels"]
    assert table["liver"] == 4 and table["right_kidney"] == 5 and summary["mapping"][9] == 4
    values = displayed(folder / "labelsTr" / "ct002.nii.gz")
    np.testing.assert_array_equal(values == 4, ct_case.labels == 5)
    validate_nnunet_dataset(folder)
    provenance = json.loads((folder / "napari_sammed_provenance.json").read_text())
    assert provenance["cases"]["ct002"]["label_mapping"]["9"] == {"name": "liver", "nnunet": 4}


def test_nnunet_from_dicom_writes_ras_geometry(tmp_path, ct_volume):
    write_dicom_series(tmp_path / "series", ct_volume[:6])
    volume = read_dicom_series(tmp_path / "series")
    labels = (volume.data > 100).astype(np.uint8)
    export_nnunet(ExportCase("dcm", volume.data, labels, volume.layer_metadata(), {1: "bright"}), tmp_path, 9, "Dicom")
    image = nib.load(str(tmp_path / "Dataset009_Dicom" / "imagesTr" / "dcm_0000.nii.gz"))
    expected = np.diag([-1.0, -1.0, 1.0, 1.0]) @ np.asarray(volume.affine)  # LPS -> RAS
    np.testing.assert_allclose(image.affine, expected)
    np.testing.assert_array_equal(displayed(tmp_path / "Dataset009_Dicom" / "imagesTr" / "dcm_0000.nii.gz"), volume.data)


@pytest.mark.parametrize("fmt", ["tiff", "zarr", "png"])
def test_stacks_round_trip(tmp_path, ct_case, fmt):
    paths = export_stack(ct_case, tmp_path, fmt, include_image=True)
    assert paths[-1].name == f"ct001_{fmt}_provenance.json"
    provenance = json.loads(paths[-1].read_text())
    assert provenance["model"]["kind"] == "none" and provenance["window"] == ct_case.window.as_dict()
    assert set(provenance["sources"]) == set(ct_case.sources)
    if fmt == "png":
        planes = sorted(paths[0].glob("*.png"))
        got = np.stack([np.asarray(Image.open(p)) for p in planes])
        np.testing.assert_array_equal(got, ct_case.labels)
        return
    labels = read_volume(paths[0] if fmt == "tiff" else paths[0] / "labels")  # an array of the zarr group
    np.testing.assert_array_equal(labels.data, ct_case.labels)
    assert labels.spacing == pytest.approx((3.0, 3.0, 3.0))
    if fmt == "tiff":
        np.testing.assert_array_equal(read_volume(paths[1]).data, ct_case.image)
    else:
        import zarr

        np.testing.assert_array_equal(zarr.open_group(str(paths[0]), mode="r")["image"][:], ct_case.image)


def test_bad_input_clear_errors_and_nothing_left(tmp_path, ct_case, monkeypatch):
    def leftovers():
        return [p for p in tmp_path.rglob("*") if ".napari-sammed" in p.name]

    wrong = copy_case(ct_case, "bad")
    wrong.labels = ct_case.labels[:, :50]
    with pytest.raises(ValueError, match="shape"):
        export_sammed2d(wrong, tmp_path / "a")
    empty = copy_case(ct_case, "empty")
    empty.labels = np.zeros_like(ct_case.labels)
    with pytest.raises(ValueError, match="empty"):
        export_nnunet(empty, tmp_path, 1, "X")
    many = copy_case(ct_case, "many")
    many.labels = ct_case.labels.astype(np.uint16) * 100
    with pytest.raises(ValueError, match="8-bit PNG"):
        export_stack(many, tmp_path / "stack", "png")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a SAM-Med2D dataset"):
        export_sammed2d(ct_case, tmp_path / "taken")
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(PermissionError, match="cannot write"):
        export_sammed2d(ct_case, tmp_path / "a_file" / "dataset")
    with pytest.raises(ValueError, match="case name"):
        export_sammed2d(copy_case(ct_case, "../escape"), tmp_path / "b")
    # a failure half-way (disk full, say) leaves neither the dataset nor staging files
    calls = []

    def failing_png(path, array):
        calls.append(path)
        if len(calls) > 5:
            raise OSError("No space left on device")
        Image.fromarray(array).save(path)

    monkeypatch.setattr(sammed2d_module, "_png", failing_png)
    with pytest.raises(OSError, match="No space"):
        export_sammed2d(ct_case, tmp_path / "c")
    assert not (tmp_path / "c").exists() and not (tmp_path / "a").exists()
    assert not leftovers()
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"


def test_2d_rgb_image_round_trips_through_both_formats(tmp_path):
    """A 2D RGB slice (one of data_demo's own images) with labels built from its masks."""
    image = np.asarray(Image.open(DATA_DEMO / "images" / "s0619_32.png"))
    labels = np.zeros(image.shape[:2], np.uint8)
    names = {}
    for i, mask_file in enumerate(sorted((DATA_DEMO / "masks").glob("s0619_32_*_000.png")), start=1):
        labels[np.asarray(Image.open(mask_file)) > 0] = i
        names[i] = mask_file.name[len("s0619_32_"):-len("_000.png")]
    case = ExportCase("s0619_32", image, labels, {"spacing": [1.0, 1.0]}, names)
    export_sammed2d(case, tmp_path / "demo2d", split="train")
    read_back = read_sammed2d(tmp_path / "demo2d")["s0619_32"]
    for i, name in names.items():
        np.testing.assert_array_equal(read_back[name], labels == i)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "demo2d" / "images" / "s0619_32.png")), image)
    export_nnunet(case, tmp_path, 20, "Rgb", channel_name="ignored for RGB")
    folder = tmp_path / "Dataset020_Rgb"
    assert json.loads((folder / "dataset.json").read_text())["channel_names"] == {"0": "R", "1": "G", "2": "B"}
    for c in range(3):
        channel = nib.load(str(folder / "imagesTr" / f"s0619_32_{c:04d}.nii.gz"))
        np.testing.assert_array_equal(np.asarray(channel.dataobj).T, image[..., c])
    validate_nnunet_dataset(folder)
