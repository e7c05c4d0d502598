"""The npe2 manifest is found, valid, and every python_name it names imports."""

import importlib

import npe2
import numpy as np
import pytest


def test_manifest_validates_and_names_import():
    manifest = npe2.PluginManifest.from_distribution("napari-sammed")
    assert manifest.name == "napari-sammed"
    for command in manifest.contributions.commands:
        module, attr = command.python_name.split(":")
        assert callable(getattr(importlib.import_module(module), attr)), command.python_name


@pytest.mark.gui
def test_every_widget_opens_from_the_plugins_menu(make_napari_viewer):
    """napari builds each dock itself (viewer injected by annotation), as Plugins > ... does."""
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((4, 32, 32), np.int16), name="vol")
    manifest = npe2.PluginManifest.from_distribution("napari-sammed")
    names = [w.display_name for w in manifest.contributions.widgets]
    assert names == ["Segment (SAM family)", "Export training data"]  # issue 25: not SAM-Med2D only
    for name in names:
        dock, widget = viewer.window.add_plugin_dock_widget("napari-sammed", name)
        assert widget.viewer.layers["vol"] is not None and dock.widget() is not None, name


def test_reader_and_writers_round_trip(tmp_path):
    import nibabel as nib
    import numpy as np

    from napari_sammed._reader import get_reader
    from napari_sammed._writer import write_labels_nifti, write_labels_tiff
    from tests.conftest import PACKAGE_DATA

    source = PACKAGE_DATA / "example_seg.nii.gz"
    reader = get_reader(str(source))
    (data, kwargs, kind), = reader(str(source))
    assert data.shape == (30, 101, 122) and tuple(kwargs["scale"]) == (3.0, 3.0, 3.0)
    out = write_labels_nifti(str(tmp_path / "seg.nii.gz"), data, kwargs)
    back = nib.load(out[0])
    original = nib.load(str(source))
    assert np.array_equal(np.asarray(back.dataobj), np.asarray(original.dataobj))
    assert np.array_equal(back.affine, original.affine)
    tif = write_labels_tiff(str(tmp_path / "seg.tif"), data, kwargs)
    (tdata, _, _), = get_reader(tif[0])(tif[0])
    assert np.array_equal(tdata, data)
    assert get_reader(str(tmp_path / "notes.txt")) is None


def test_reader_opens_every_array_of_an_exported_zarr_stack(tmp_path):
    import numpy as np

    from napari_sammed._reader import get_reader
    from napari_sammed.core.export import ExportCase, export_stack

    image = np.arange(2 * 6 * 7, dtype=np.int16).reshape(2, 6, 7)
    labels = (image % 3 == 0).astype(np.uint8)
    paths = export_stack(ExportCase("tiny", image, labels, {"spacing": [3.0, 0.8, 0.8]}), tmp_path, "zarr",
                         include_image=True)
    layers = get_reader(str(paths[0]))(str(paths[0]))
    by_name = {kwargs["name"]: (data, kwargs, kind) for data, kwargs, kind in layers}
    assert by_name["labels"][2] == "labels" and by_name["image"][2] == "image"
    assert np.array_equal(by_name["labels"][0], labels) and np.array_equal(by_name["image"][0], image)
    assert tuple(by_name["labels"][1]["scale"]) == (3.0, 0.8, 0.8)
