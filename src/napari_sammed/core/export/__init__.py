"""Training-data export: SAM-Med2D format, nnU-Net v2 raw datasets, TIFF/zarr/PNG stacks."""

from .case import ExportCase
from .entry import FORMATS, ExportOptions, ExportReport, export_case
from .nnunet import export_nnunet
from .sammed2d import export_sammed2d
from .stacks import export_stack

__all__ = ["FORMATS", "ExportCase", "ExportOptions", "ExportReport", "export_case", "export_nnunet", "export_sammed2d",
           "export_stack"]
