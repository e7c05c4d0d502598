"""Issue 24, item 7: a batch rerun checks the records it trusts and writes only into OUTDIR."""

from __future__ import annotations

import csv
import json

import pytest

from tests.hostile.conftest import one_line_error, run, snapshot


@pytest.fixture
def batch(tmp_path, capsys, case_files):
    """A plan of two cases (propagate + SAM-Med2D export), run once; -> (plan, outdir)."""
    image, labels = case_files
    plan = tmp_path / "plan.yaml"
    plan.write_text("steps: [propagate, export]\nexport: {format: sammed2d, dataset_name: ds, split: train}\n"
                    f"cases:\n  - {{name: a, image: {image}, seeds: {labels}}}\n"
                    f"  - {{name: b, image: {image}, seeds: {labels}}}\n")
    outdir = tmp_path / "out"
    code, _, err = run(capsys, "batch", plan, outdir, "--kind", "weight-free")
    assert code == 0, err
    return plan, outdir


def statuses(outdir) -> dict[str, str]:
    with open(outdir / "summary.csv") as f:
        return {row["case"]: row["status"] for row in csv.DictReader(f)}


def exported(outdir) -> set[str]:
    index = json.loads((outdir / "export" / "ds" / "image2label_train.json").read_text())
    return {entry.split("/")[-1].split("_")[0] for entry in index}


class TestBatchResume:
    @pytest.mark.parametrize("payload", ["[]", "[" * 100_000], ids=["list", "deep"])
    def test_damaged_done_json_means_the_case_runs_again(self, capsys, batch, payload):
        plan, outdir = batch
        (outdir / "a" / "done.json").write_text(payload)
        code, _, err = run(capsys, "batch", plan, outdir, "--kind", "weight-free")
        assert code == 0, err
        assert "Traceback" not in err
        assert statuses(outdir) == {"a": "ok", "b": "cached"}
        assert json.loads((outdir / "a" / "done.json").read_text())["status"] == "ok"

    @pytest.mark.parametrize("payload", ["[]", '{"a": {"key": "x"', '{"a": 3}'], ids=["list", "truncated", "not-records"])
    def test_damaged_export_record_exports_every_case_again(self, capsys, batch, payload):
        plan, outdir = batch
        record = outdir / "exported.json"
        record.write_text(payload)
        code, _, err = run(capsys, "batch", plan, outdir, "--kind", "weight-free")
        assert code == 0, err
        assert f"napari-sammed batch: warning: {record}: damaged (not a record of exported cases); exporting every "\
               "case again" in err
        assert "Traceback" not in err
        assert set(json.loads(record.read_text())) == {"a", "b"} and exported(outdir) == {"a", "b"}

    def test_deleted_labels_are_not_trusted_as_cached(self, capsys, batch):
        plan, outdir = batch
        (outdir / "a" / "labels.nii.gz").unlink()
        code, _, err = run(capsys, "batch", plan, outdir, "--kind", "weight-free")
        assert code == 0, err
        assert statuses(outdir) == {"a": "ok", "b": "cached"}
        assert (outdir / "a" / "labels.nii.gz").is_file()

    def test_cut_outputs_are_not_trusted_as_cached(self, capsys, batch):
        plan, outdir = batch
        trace = outdir / "a" / "qc.csv"
        trace.write_text(trace.read_text()[:10])
        code, _, err = run(capsys, "batch", plan, outdir, "--kind", "weight-free")
        assert code == 0, err
        assert statuses(outdir)["a"] == "ok"

    @pytest.mark.parametrize("place", ["a", "export", "export/ds", ".cache"])
    def test_planted_symlink_in_outdir_is_refused(self, tmp_path, capsys, batch, place):
        plan, outdir = batch
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        (elsewhere / "keep.txt").write_text("not batch's")
        planted = outdir / place
        if planted.exists():
            import shutil

            shutil.rmtree(planted)
        planted.symlink_to(elsewhere, target_is_directory=True)
        (outdir / "a" / "done.json").unlink(missing_ok=True)  # so that case a would be written again
        before = snapshot(elsewhere)
        code, _, err = run(capsys, "batch", plan, outdir, "--kind", "weight-free")
        assert code == 2
        one_line_error(err, "batch", "is a symbolic link; batch writes only into OUTDIR's own folders", planted)
        assert snapshot(elsewhere) == before
