"""Headless GUI tests (Xvfb): the Export dock on the real CT sample."""

import json

import nibabel as nib
import numpy as np
import pytest

from napari_sammed._napari.export_widget import ExportWidget
from napari_sammed._sample_data import DATA
from tests.conftest import middle_slice
from tests.napari.conftest import open_segment_dock, wait_for_worker

pytestmark = pytest.mark.gui


def organs(viewer):
    layer = viewer.layers["CT reference labels"]
    keep = np.isin(layer.data, [1, 2, 3, 5])
    layer.data = np.where(keep, layer.data, 0)
    return layer


def test_export_dock_sammed2d_and_nnunet(ct_viewer, qtbot, tmp_path):
    organs(ct_viewer)
    widget = ExportWidget(ct_viewer)
    ct_viewer.window.add_dock_widget(widget)
    assert widget.image.value.name == "CT" and widget.labels_layer.value.name == "CT reference labels"
    assert widget.case.value == "CT"
    assert "5=liver" in widget.class_names.value  # from the layer's metadata
    widget.folder.value = tmp_path / "ct_demo"
    widget.split.value = "test"
    widget.export()
    wait_for_worker(qtbot, widget)
    assert widget.status.value.startswith("exported to"), widget.status.value
    test = json.loads((tmp_path / "ct_demo" / "label2image_test.json").read_text())
    assert any(k.endswith("_liver_000.png") for k in test)
    provenance = json.loads((tmp_path / "ct_demo" / "napari_sammed_provenance.json").read_text())["cases"]["CT"]
    assert provenance["window"] == {"low": -160.0, "high": 240.0}  # the layer's contrast limits

    widget.format.value = "nnU-Net v2"
    widget.folder.value = tmp_path / "raw"
    widget.dataset_id.value = 12
    widget.dataset_name.value = "Organs"
    widget.export()
    wait_for_worker(qtbot, widget)
    image = nib.load(str(tmp_path / "raw" / "Dataset012_Organs" / "imagesTr" / "CT_0000.nii.gz"))
    assert np.array_equal(image.affine, nib.load(str(DATA / "example_ct_sm.nii.gz")).affine)

    widget.export()  # again: the case is there, nothing is replaced without asking
    wait_for_worker(qtbot, widget)
    assert "already in" in widget.status.value or "append" in widget.status.value


def test_export_records_what_made_the_labels(ct_viewer, qtbot, tmp_path):
    segment = open_segment_dock(ct_viewer)
    segment.image.value = ct_viewer.layers["CT"]
    reference = np.asarray(ct_viewer.layers["CT reference labels"].data)
    image = ct_viewer.layers["CT"]
    target = ct_viewer.add_labels(np.zeros(image.data.shape, np.int32), name="annotations", scale=image.scale)
    z = middle_slice(reference, 5)
    target.data[z][reference[z] == 5] = 5
    segment.target.reset_choices()
    segment.target.value = target
    segment.object_id.value = 5
    segment.propagation.propagate()
    wait_for_worker(qtbot, segment)
    assert target.metadata["napari_sammed"]["engine"]["kind"] == "weight-free"

    widget = ExportWidget(ct_viewer)
    widget.labels_layer.value = target
    widget.class_names.value = "5=liver"
    widget.format.value = "TIFF stack"
    widget.folder.value = tmp_path / "stacks"
    widget.export()
    wait_for_worker(qtbot, widget)
    provenance = json.loads((tmp_path / "stacks" / "CT_tiff_provenance.json").read_text())
    assert provenance["model"]["checkpoint_sha256"] == "weight-free"
    assert provenance["qc_trace_rows"] == len(target.metadata["napari_sammed"]["trace"]) > 0
    assert (tmp_path / "stacks" / "CT_qc.csv").is_file()


def test_export_dock_refuses_bad_input(ct_viewer, qtbot, tmp_path):
    ct_viewer.add_labels(np.zeros((5, 5), np.int32), name="wrong")
    widget = ExportWidget(ct_viewer)
    widget.labels_layer.value = ct_viewer.layers["wrong"]
    widget.folder.value = tmp_path / "out"
    assert widget.export() is None
    assert "shape" in widget.status.value and not (tmp_path / "out").exists()


def test_export_with_samaug_priors_from_the_samaug_layers(ct_viewer, qtbot, tmp_path):
    from tests.conftest import displayed

    organs(ct_viewer)
    segment = open_segment_dock(ct_viewer)
    segment.image.value = ct_viewer.layers["CT"]
    _dock, widget = ct_viewer.window.add_plugin_dock_widget("napari-sammed", "Export training data")
    widget.labels_layer.value = ct_viewer.layers["CT reference labels"]
    widget.format.value = "nnU-Net v2"
    widget.folder.value = tmp_path / "raw"
    widget.samaug.value = True
    widget.export()
    assert "press 'SAMAug priors'" in widget.status.value  # no maps yet: says what to do

    with qtbot.waitSignal(segment.start_samaug().finished, timeout=60_000):  # the current slice only
        pass
    widget.export()
    assert "cover 1 of its 30 axial slices" in widget.status.value
    segment.samaug_scope.value = "whole volume"
    with qtbot.waitSignal(segment.start_samaug().finished, timeout=120_000):
        pass
    widget.export()
    wait_for_worker(qtbot, widget)
    assert widget.status.value.startswith("exported to"), widget.status.value
    folder = tmp_path / "raw" / "Dataset001_Annotations"
    info = json.loads((folder / "dataset.json").read_text())
    assert info["channel_names"] == {"0": "CT", "1": "samaug_seg_prior", "2": "samaug_boundary_prior"}
    np.testing.assert_array_equal(displayed(folder / "imagesTr" / "CT_0001.nii.gz"),
                                  ct_viewer.layers["CT SAMAug seg prior"].data)
    np.testing.assert_array_equal(displayed(folder / "imagesTr" / "CT_0002.nii.gz"),
                                  ct_viewer.layers["CT SAMAug boundary prior"].data)
