"""Datasets that never lose a case (issue 24): a case owns exactly its files, foreign nnU-Net
datasets are respected, and an append costs what the new case costs, not what the dataset holds."""

from __future__ import annotations

import json
import os
import shutil

import nibabel as nib
import numpy as np
import pytest

from napari_sammed.core.export import ExportCase, ExportOptions, export_case
from napari_sammed.core.io.inputs import InputError
from napari_sammed.core.io.windowing import Window
from tests.hostile.conftest import one_line_error, run, save_nifti, snapshot, tiny_image, tiny_labels

WINDOW = Window(-50.0, 350.0)


def case_3d(name: str, names: dict | None = None) -> ExportCase:
    """Slices 1-4 labelled: images/<name>_1.png ... <name>_4.png."""
    return ExportCase(name, tiny_image(), tiny_labels(), {"spacing": [2.0, 0.8, 0.8]}, names or {}, WINDOW)


def case_2d(name: str, names: dict | None = None) -> ExportCase:
    return ExportCase(name, tiny_image()[2], tiny_labels()[2], {"spacing": [0.8, 0.8]}, names or {}, WINDOW)


def sammed2d(folder, **options) -> ExportOptions:
    return ExportOptions(format="sammed2d", folder=str(folder), split="train", **options)


def listed(dataset) -> set[str]:
    """Every file the SAM-Med2D index names, relative to the dataset's parent."""
    train = json.loads((dataset / "image2label_train.json").read_text())
    test = json.loads((dataset / "label2image_test.json").read_text())
    return {e for k, v in train.items() for e in (k, *v)} | {e for pair in test.items() for e in pair}


class TestCaseOwnsExactlyItsFiles:
    """Item 1: ownership was guessed from names (``images/X`` then nothing or ``_<digits>``), so
    case ``ct_1`` claimed slice 1 of case ``ct`` and an overwrite deleted or replaced it."""

    @pytest.mark.parametrize("first, second", [(case_3d("ct"), case_2d("ct_1")), (case_2d("a_1"), case_3d("a"))])
    def test_a_name_that_is_another_case_slice_is_refused(self, tmp_path, first, second):
        dataset = tmp_path / "ds"
        export_case(first, sammed2d(dataset))
        before = snapshot(dataset)
        # batch export always appends with overwrite: the case must still not take another's files
        with pytest.raises(InputError, match=f"case name '{second.name}' could collide with case '{first.name}'"):
            export_case(second, sammed2d(dataset, append=True, overwrite=True))
        assert snapshot(dataset) == before

    def test_a_mask_name_of_another_case_is_refused(self, tmp_path):
        dataset = tmp_path / "ds"
        export_case(case_2d("a", {1: "b liver", 2: "x"}), sammed2d(dataset))  # masks/a_b_liver_000.png
        before = snapshot(dataset)
        with pytest.raises(InputError, match="case 'a_b' would write masks/a_b_liver_000.png, which is case 'a''s"):
            export_case(case_2d("a_b", {1: "liver", 2: "y"}), sammed2d(dataset, append=True, overwrite=True))
        assert snapshot(dataset) == before

    def test_files_of_a_dataset_made_elsewhere_belong_to_no_case(self, tmp_path):
        dataset = tmp_path / "ds"
        export_case(case_2d("s_1"), sammed2d(dataset))
        (dataset / "napari_sammed_provenance.json").unlink()  # as another tool leaves it
        before = snapshot(dataset)
        with pytest.raises(InputError, match="case 's' would write images/s_1.png, which is already in it"):
            export_case(case_3d("s"), sammed2d(dataset, append=True, overwrite=True))
        assert snapshot(dataset) == before

    def test_the_provenance_lists_each_case_files_and_an_overwrite_replaces_exactly_them(self, tmp_path):
        dataset = tmp_path / "ds"
        export_case(case_3d("ct"), sammed2d(dataset))
        export_case(case_2d("ctx"), sammed2d(dataset, append=True))
        cases = json.loads((dataset / "napari_sammed_provenance.json").read_text())["cases"]
        assert {f"ds/{f}" for c in cases.values() for f in c["files"]} == listed(dataset)
        assert cases["ct"]["files"] == sorted(["images/ct_1.png", "images/ct_2.png", "images/ct_3.png", "images/ct_4.png",
                                               "masks/ct_1_label_1_000.png", "masks/ct_2_label_1_000.png",
                                               "masks/ct_2_label_2_000.png", "masks/ct_3_label_1_000.png",
                                               "masks/ct_3_label_2_000.png", "masks/ct_4_label_1_000.png"])
        other = snapshot(dataset / "images") | snapshot(dataset / "masks")
        smaller = case_3d("ct")
        smaller.labels = np.where(smaller.labels == 2, 2, 0).astype(np.uint8)  # slices 2 and 3 only
        export_case(smaller, sammed2d(dataset, append=True, overwrite=True))
        now = snapshot(dataset / "images") | snapshot(dataset / "masks")
        assert {k: v for k, v in now.items() if k.startswith("ctx")} == {k: v for k, v in other.items() if k.startswith("ctx")}
        assert sorted(k for k in now if k.startswith("ct_")) == ["ct_2.png", "ct_2_label_2_000.png", "ct_3.png",
                                                                  "ct_3_label_2_000.png"]
        assert all((tmp_path / e).is_file() for e in listed(dataset))

    def test_cases_recorded_without_their_files_are_matched_by_name_unless_ambiguous(self, tmp_path):
        """Datasets written before provenance listed files: a case's entries by name, as before,
        but an entry two known cases could claim is refused rather than taken."""
        dataset = tmp_path / "ds"
        export_case(case_3d("ct"), sammed2d(dataset))
        export_case(case_2d("zz"), sammed2d(dataset, append=True))
        provenance_file = dataset / "napari_sammed_provenance.json"
        provenance = json.loads(provenance_file.read_text())
        for record in provenance["cases"].values():
            record.pop("files", None)  # as an older napari-sammed wrote it
        # ... and a 2D case 'ct_9' written by hand, as an older version allowed
        train = json.loads((dataset / "image2label_train.json").read_text())
        for f in ("images/ct_9.png", "masks/ct_9_label_1_000.png"):
            shutil.copy(dataset / "images/zz.png", dataset / f)
        train["ds/images/ct_9.png"] = ["ds/masks/ct_9_label_1_000.png"]
        provenance["cases"]["ct_9"] = {}
        (dataset / "image2label_train.json").write_text(json.dumps(train))
        provenance_file.write_text(json.dumps(provenance))
        before = snapshot(dataset)
        with pytest.raises(InputError, match="ds/images/ct_9.png could be case 'ct''s or case 'ct_9''s"):
            export_case(case_3d("ct"), sammed2d(dataset, append=True, overwrite=True))
        assert snapshot(dataset) == before
        smaller = case_2d("zz")
        smaller.labels = (smaller.labels == 2).astype(np.uint8)
        export_case(smaller, sammed2d(dataset, append=True, overwrite=True))  # unambiguous: by name
        assert sorted(p.name for p in (dataset / "masks").glob("zz*")) == ["zz_label_1_000.png"]
        assert all((tmp_path / e).is_file() for e in listed(dataset))


FOREIGN = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "label_1": 1, "label_2": 2}, "numTraining": 2,
           "file_ending": ".nii", "name": "Foreign", "licence": "CC-BY-SA 4.0", "reference": "doi:10.0/x",
           "overwrite_image_reader_writer": "SimpleITKIO", "regions_class_order": [1, 2], "description": "theirs"}


def foreign_dataset(root, info: dict, ending: str):
    folder = root / "Dataset005_Foreign"
    for d in ("imagesTr", "labelsTr"):
        (folder / d).mkdir(parents=True)
    for case in ("f1", "f2"):
        save_nifti(folder / "imagesTr" / f"{case}_0000{ending}", tiny_image())
        save_nifti(folder / "labelsTr" / f"{case}{ending}", tiny_labels())
    (folder / "dataset.json").write_text(json.dumps(info, indent=2))
    return folder


class TestForeignNnunetDatasetsAreRespected:
    """Item 4: an append rewrote another tool's dataset.json: its file ending, numTraining
    (counted with our ending only) and every key napari-sammed does not write."""

    def test_append_keeps_every_key_and_the_file_ending(self, tmp_path, capsys, case_files):
        image, labels = case_files
        folder = foreign_dataset(tmp_path, FOREIGN, ".nii")
        code, _, err = run(capsys, "export", image, labels, tmp_path, "--format", "nnunet", "--dataset-id", "5",
                           "--dataset-name", "Foreign", "--case", "c", "--append")
        assert code == 0, err
        assert json.loads((folder / "dataset.json").read_text()) == {**FOREIGN, "numTraining": 3}
        assert sorted(p.name for p in (folder / "labelsTr").iterdir()) == ["c.nii", "f1.nii", "f2.nii"]
        assert sorted(p.name for p in (folder / "imagesTr").iterdir()) == ["c_0000.nii", "f1_0000.nii", "f2_0000.nii"]
        assert (folder / "labelsTr" / "c.nii").read_bytes()[344:348] == b"n+1\x00"  # plain NIfTI-1, as theirs
        np.testing.assert_array_equal(np.asarray(nib.load(folder / "labelsTr" / "c.nii").dataobj).T, tiny_labels())

    @pytest.mark.parametrize("change, fragment", [
        ({"file_ending": ".mha"}, "file_ending '.mha': napari-sammed writes NIfTI"),
        ({"dataset": {"f1": {"images": ["imagesTr/f1_0000.nii"], "label": "labelsTr/f1.nii"}}},
         "lists its cases under 'dataset'"),
    ])
    def test_what_cannot_be_appended_consistently_is_refused(self, tmp_path, capsys, case_files, change, fragment):
        image, labels = case_files
        folder = foreign_dataset(tmp_path, {**FOREIGN, **change}, ".nii")
        before = snapshot(tmp_path)
        code, _, err = run(capsys, "export", image, labels, tmp_path, "--format", "nnunet", "--dataset-id", "5",
                           "--dataset-name", "Foreign", "--case", "c", "--append")
        assert code == 2
        one_line_error(err, "export", fragment, folder / "dataset.json")
        assert snapshot(tmp_path) == before


class TestAppendStaysFast:
    """Item 9: every append resolved every index entry (two resolve() each): 10^5 images took a
    minute, batch exports grew quadratically. Now the file system work is the new case's."""

    @staticmethod
    def file_system_calls(tmp_path, monkeypatch, images: int) -> int:
        dataset = tmp_path / f"n{images}" / "ds"
        (dataset / "images").mkdir(parents=True)
        (dataset / "masks").mkdir()
        stems = [f"c{i // 100:05d}_{i % 100}" for i in range(images)]  # cases of 100 slices
        (dataset / "image2label_train.json").write_text(json.dumps({f"ds/images/{s}.png": [f"ds/masks/{s}_x_000.png"]
                                                                    for s in stems}))
        (dataset / "label2image_test.json").write_text("{}")
        cases: dict[str, dict] = {}
        for s in stems:
            cases.setdefault(s.rsplit("_", 1)[0], {"files": []})["files"] += [f"images/{s}.png", f"masks/{s}_x_000.png"]
        (dataset / "napari_sammed_provenance.json").write_text(json.dumps({"cases": cases}))
        calls = [0]

        def counting(real):
            def call(*args, **kwargs):
                calls[0] += 1
                return real(*args, **kwargs)
            return call

        with monkeypatch.context() as patch:  # resolve() and exists() end in these
            patch.setattr(os, "stat", counting(os.stat))
            patch.setattr(os, "lstat", counting(os.lstat))
            export_case(case_2d("new"), sammed2d(dataset, append=True))
        assert len(json.loads((dataset / "image2label_train.json").read_text())) == images + 1
        return calls[0]

    def test_an_append_to_100000_images_makes_the_file_system_calls_of_one_to_100(self, tmp_path, monkeypatch):
        small = self.file_system_calls(tmp_path, monkeypatch, 100)
        big = self.file_system_calls(tmp_path, monkeypatch, 100_000)
        assert small < 400 and big <= small + 10, (small, big)


class TestCaseNamesFromEveryPath:
    def test_a_trailing_newline_is_refused_where_the_dock_exports_too(self):
        """The dock builds an ExportCase directly: its validation must not let ``match``'s ``$``
        accept a name ending in a newline (the CLI and plans already refused it)."""
        with pytest.raises(ValueError, match="case name"):
            case_2d("a\n").validate()
        case_2d("a").validate()
