"""Names vulture cannot see used: hooks that napari, pickle, pydantic, torch or Python itself
read by name. Only real false positives go here; dead code is deleted instead. Read (never
imported) by ``tests/core/test_dead_code.py``: each line below reads the name once."""

import types
import warnings

from torch import nn

import napari_sammed
from napari_sammed._napari.segment_widget import SegmentWidget
from napari_sammed.core.export.staging import Journal
from napari_sammed.core.io.inputs import NnunetDatasetJson
from napari_sammed.core.model.checkpoint_scan import _ScanUnpickler

_ = (
    napari_sammed.__getattr__,  # PEP 562: Python calls a module's __getattr__ for a missing name
    SegmentWidget,  # napari builds the dock from napari.yaml's python_name
    _ScanUnpickler.persistent_load,  # pickle.Unpickler calls it for each persistent id
    Journal.stale, Journal.dirs,  # schema fields, written and read back through pydantic
    NnunetDatasetJson.channel_names, NnunetDatasetJson.numTraining, NnunetDatasetJson.file_ending,  # nnU-Net's
    warnings.showwarning,  # cli replaces it; the warnings module calls it
    nn.Module.pixel_mean, nn.Module.pixel_std,  # buffers segment_anything's Sam reads in preprocess
    types.ModuleType.__path__, types.ModuleType.__package__,  # the import system reads them (sam_import)
)
