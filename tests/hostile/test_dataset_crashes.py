"""Datasets that never lose a case (issue 24) under concurrency and crashes: two real processes
appending at once, ``kill -9`` at several points of a commit followed by a rerun, SIGHUP."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import napari_sammed
from tests.hostile.conftest import one_line_error, run, save_nifti, snapshot, tiny_labels

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_ROOT = Path(napari_sammed.__file__).resolve().parents[1]  # the code under test, wherever it is
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PACKAGE_ROOT), str(ROOT)]), "OMP_NUM_THREADS": "1"}

# The CLI in a child process that stops at a chosen point of the export, found from outside the
# code under test, so that the same points exist in any version of it:
#   commit           everything staged, nothing moved (Staging.commit replaced by a pause)
#   replace:<end>    before the commit renames a file onto a path ending with <end>
#   unlink:<end>     before a file whose path ends with <end> is deleted
#   together:<n>     every export waits at its commit until <n> exports got there or wait for
#                    the dataset's lock (3 s at most)
# Pausing writes the marker file and sleeps, so the test can kill -9 it there.
CHILD = textwrap.dedent("""
    import os, pathlib, sys, time
    from napari_sammed.core.export import staging
    marker, point = pathlib.Path(sys.argv[1]), sys.argv[2]
    kind, _, end = point.partition(":")

    def pause():
        marker.write_text(str(os.getpid()))
        time.sleep(120)

    if kind == "commit":
        staging.Staging.commit = lambda self: pause()
    elif kind == "replace":
        class Os:
            def __getattr__(self, name):
                return getattr(os, name)

            def replace(self, src, dst):
                if str(dst).endswith(end):
                    pause()
                return os.replace(src, dst)
        staging.os = Os()
    elif kind == "unlink":
        unlink = pathlib.Path.unlink
        def paused_unlink(self, *args, **kwargs):
            if str(self).endswith(end):
                pause()
            return unlink(self, *args, **kwargs)
        pathlib.Path.unlink = paused_unlink
    elif kind == "together":
        import logging
        def arrive():
            marker.mkdir(exist_ok=True)
            (marker / str(os.getpid())).touch()
        class Waiting(logging.Handler):  # an export that waits for the lock will not commit first
            def emit(self, record):
                if "waiting for another export" in record.getMessage():
                    arrive()
        logging.getLogger("napari_sammed").addHandler(Waiting())
        commit = staging.Staging.commit
        def together(self):
            arrive()
            deadline = time.monotonic() + 3
            while len(list(marker.iterdir())) < int(end) and time.monotonic() < deadline:
                time.sleep(0.02)
            commit(self)
        staging.Staging.commit = together
    from napari_sammed.cli import main
    sys.exit(main(sys.argv[3:]))
""")


def spawn(marker: Path, point: str, argv: list) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CHILD, str(marker), point, *map(str, argv)], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill_when_paused(child: subprocess.Popen, marker: Path, sig: int = signal.SIGKILL) -> str:
    """Wait until ``child`` pauses, send ``sig``; its stderr."""
    try:
        deadline = time.monotonic() + 90
        while not marker.exists():
            assert child.poll() is None, f"the export ended without pausing: {child.communicate()}"
            assert time.monotonic() < deadline, "the export never reached the pause"
            time.sleep(0.05)
        child.send_signal(sig)
        return child.communicate(timeout=30)[1]
    finally:
        if child.poll() is None:
            child.kill()


def listed(dataset: Path) -> set[str]:
    train = json.loads((dataset / "image2label_train.json").read_text())
    test = json.loads((dataset / "label2image_test.json").read_text())
    return {e for k, v in train.items() for e in (k, *v)} | {e for pair in test.items() for e in pair}


def assert_sammed2d_whole(dataset: Path, at_rest: bool = True) -> None:
    """The index names only files that exist; at rest also: every image and mask is listed,
    every case is in the provenance, and nothing hidden of ours is left."""
    names = listed(dataset)
    assert all((dataset.parent / e).is_file() for e in names), [e for e in names if not (dataset.parent / e).is_file()]
    if at_rest:
        on_disk = {f"{dataset.name}/{p.relative_to(dataset).as_posix()}" for d in ("images", "masks")
                   for p in (dataset / d).iterdir()}
        assert on_disk == names
        assert not [p for p in dataset.rglob(".napari-sammed*")]
        cases = json.loads((dataset / "napari_sammed_provenance.json").read_text())["cases"]
        assert {f for c in cases.values() for f in c.get("files", [])} == {e.split("/", 1)[1] for e in names}


def assert_nnunet_whole(folder: Path, at_rest: bool = True) -> None:
    info = json.loads((folder / "dataset.json").read_text())
    cases = sorted(p.name[: -len(".nii.gz")] for p in (folder / "labelsTr").iterdir())
    assert all((folder / "imagesTr" / f"{c}_0000.nii.gz").is_file() for c in cases)
    if at_rest:
        assert info["numTraining"] == len(cases)
        assert sorted(p.name for p in (folder / "imagesTr").iterdir()) == [f"{c}_0000.nii.gz" for c in cases]
        assert sorted(info["labels"].values()) == list(range(len(info["labels"])))
        for c in cases:
            values = np.unique(np.asarray(nib.load(folder / "labelsTr" / f"{c}.nii.gz").dataobj))
            assert set(values.tolist()) <= set(info["labels"].values())
        assert not [p for p in folder.rglob(".napari-sammed*")]


def sammed2d_args(image, labels, dataset, case):
    return ["export", image, labels, dataset, "--format", "sammed2d", "--case", case, "--split", "train"]


def nnunet_args(image, labels, raw, case):
    return ["export", image, labels, raw, "--format", "nnunet", "--dataset-id", "4", "--case", case]


class TestOneWriterPerDataset:
    """Item 2: two exports appending to one dataset at once both exited 0 and lost data (a case
    missing from the index, two classes under one nnU-Net value)."""

    def test_two_processes_appending_at_once_keep_both_cases(self, tmp_path, capsys, case_files):
        image, labels = case_files
        dataset = tmp_path / "ds"
        assert run(capsys, *sammed2d_args(image, labels, dataset, "a"))[0] == 0
        together = tmp_path / "together"
        children = [spawn(together, "together:2", [*sammed2d_args(image, labels, dataset, c), "--append"])
                    for c in ("b", "c")]
        results = [child.communicate(timeout=120) for child in children]
        assert [child.returncode for child in children] == [0, 0], results
        train = json.loads((dataset / "image2label_train.json").read_text())
        assert {Path(k).stem.rsplit("_", 1)[0] for k in train} == {"a", "b", "c"}
        assert len(train) == 12
        assert_sammed2d_whole(dataset)

    def test_two_processes_adding_classes_at_once_get_distinct_nnunet_values(self, tmp_path, capsys, case_files):
        image, labels = case_files
        raw = tmp_path / "raw"
        assert run(capsys, *nnunet_args(image, labels, raw, "a"))[0] == 0
        together = tmp_path / "together"
        children = [spawn(together, "together:2", [*nnunet_args(image, labels, raw, c), "--append",
                                                   "--class-names", f"1={organ},2=kidney"])
                    for c, organ in (("b", "spleen"), ("c", "liver"))]
        results = [child.communicate(timeout=120) for child in children]
        assert [child.returncode for child in children] == [0, 0], results
        folder = raw / "Dataset004_Annotations"
        table = json.loads((folder / "dataset.json").read_text())["labels"]
        assert set(table) == {"background", "label_1", "label_2", "spleen", "kidney", "liver"}
        for case, organ in (("b", "spleen"), ("c", "liver")):
            values = np.asarray(nib.load(folder / "labelsTr" / f"{case}.nii.gz").dataobj).T
            np.testing.assert_array_equal(values == table[organ], tiny_labels() == 1)
            np.testing.assert_array_equal(values == table["kidney"], tiny_labels() == 2)
        assert_nnunet_whole(folder)

    def test_a_held_dataset_is_named_in_one_line_after_waiting(self, tmp_path, capsys, case_files, monkeypatch):
        from napari_sammed.core.export import lock

        image, labels = case_files
        dataset = tmp_path / "ds"
        assert run(capsys, *sammed2d_args(image, labels, dataset, "a"))[0] == 0
        before = snapshot(dataset)
        monkeypatch.setattr(lock, "WAIT_S", 0.3)
        with lock.dataset_lock(dataset):  # another export, as the kernel sees it
            code, _, err = run(capsys, *sammed2d_args(image, labels, dataset, "b"), "--append")
        assert code == 2
        one_line_error(err, "export", "another export is writing to this folder (waited 0.3 s); try again", dataset)
        assert "waiting for another export to finish writing" in err
        assert snapshot(dataset) == before


#: (kill point, command, whether the killed export had reached its commit point)
SAMMED2D_KILLS = [
    ("commit", "append", False),  # staged, nothing moved: the staging is a dead export's
    ("replace:ds/images/a_1.png", "overwrite", False),  # the first file of the case replaced
    ("replace:ds/label2image_test.json", "overwrite", False),  # the train index in, the test index not
    ("unlink:ds/masks/a_1_label_1_000.png", "overwrite", True),  # every index in, stale masks being deleted
]


class TestCrashSafeCommits:
    """Item 3: ``kill -9`` in an overwrite's commit left an index naming a missing file, and an
    append killed mid-way left staging folders that no later run removed."""

    @pytest.mark.parametrize("point, command, committed", SAMMED2D_KILLS)
    def test_kill_9_in_a_sammed2d_commit_then_rerun(self, tmp_path, capsys, case_files, point, command, committed):
        image, labels = case_files
        dataset = tmp_path / "ds"
        assert run(capsys, *sammed2d_args(image, labels, dataset, "a"))[0] == 0
        if command == "append":
            argv = [*sammed2d_args(image, labels, dataset, "b"), "--append"]
        else:  # a different case a, which moves to the test index
            other = save_nifti(tmp_path / "other.nii.gz", (tiny_labels() > 0).astype(np.uint8) * 3)
            argv = [*sammed2d_args(image, other, dataset, "a")[:-1], "test", "--overwrite"]
        reference = tmp_path / "reference" / "ds"  # the same export, not interrupted
        shutil.copytree(dataset, reference)
        assert run(capsys, *[reference if a == dataset else a for a in argv])[0] == 0
        before = snapshot(dataset)

        kill_when_paused(spawn(tmp_path / "paused", point, argv), tmp_path / "paused")
        assert_sammed2d_whole(dataset, at_rest=False)  # even now, the index names only files that exist

        code, _, err = run(capsys, *sammed2d_args(image, labels, dataset, "a"))  # any next export: refused, ...
        assert code == 2 and "--append" in err
        assert_sammed2d_whole(dataset)  # ... but first it undid (or finished) the killed commit
        without_provenance = {k: v for k, v in snapshot(dataset).items() if "provenance" not in k}
        if committed:
            assert without_provenance == {k: v for k, v in snapshot(reference).items() if "provenance" not in k}
        else:
            assert snapshot(dataset) == before

        assert run(capsys, *argv)[0] == 0  # the rerun of the killed export
        assert_sammed2d_whole(dataset)
        assert {k: v for k, v in snapshot(dataset).items() if "provenance" not in k} == \
            {k: v for k, v in snapshot(reference).items() if "provenance" not in k}

    def test_kill_9_in_an_nnunet_commit_then_rerun(self, tmp_path, capsys, case_files):
        image, labels = case_files
        raw = tmp_path / "raw"
        folder = raw / "Dataset004_Annotations"
        assert run(capsys, *nnunet_args(image, labels, raw, "a"))[0] == 0
        before = snapshot(folder)
        argv = [*nnunet_args(image, labels, raw, "b"), "--append"]
        kill_when_paused(spawn(tmp_path / "paused", "replace:labelsTr/b.nii.gz", argv), tmp_path / "paused")
        assert_nnunet_whole(folder, at_rest=False)  # b's image is in, its label (nnU-Net's index) not
        code, _, err = run(capsys, *nnunet_args(image, labels, raw, "a"))
        assert code == 2 and "--append" in err
        assert snapshot(folder) == before  # b's image, staging and journal gone
        assert run(capsys, *argv)[0] == 0
        assert_nnunet_whole(folder)
        assert json.loads((folder / "dataset.json").read_text())["numTraining"] == 2

    def test_kill_9_in_the_first_export_into_a_folder_then_rerun(self, tmp_path, capsys, case_files):
        """A new dataset is committed like an append (into the folder holding the lock): killed
        before its index, the rerun finds an empty folder, not 'a folder that is not a dataset'."""
        image, labels = case_files
        dataset = tmp_path / "ds"
        argv = sammed2d_args(image, labels, dataset, "a")
        kill_when_paused(spawn(tmp_path / "paused", "replace:ds/image2label_train.json", argv), tmp_path / "paused")
        assert (dataset / "images" / "a_1.png").is_file() and not (dataset / "image2label_train.json").exists()
        assert run(capsys, *argv)[0] == 0
        assert_sammed2d_whole(dataset)

    def test_sighup_cleans_up_like_sigterm(self, tmp_path, capsys, case_files):
        image, labels = case_files
        dataset = tmp_path / "ds"
        assert run(capsys, *sammed2d_args(image, labels, dataset, "a"))[0] == 0
        before = snapshot(tmp_path)
        marker = tmp_path.parent / f"{tmp_path.name}-paused"
        child = spawn(marker, "commit", [*sammed2d_args(image, labels, dataset, "b"), "--append"])
        err = kill_when_paused(child, marker, signal.SIGHUP)
        assert child.returncode == 128 + signal.SIGHUP, err
        assert err.strip().splitlines()[-1] == ("napari-sammed export: error: terminated (SIGHUP); "
                                                "unfinished output was removed")
        assert snapshot(tmp_path) == before
        assert not list(tmp_path.rglob(".napari-sammed*"))
