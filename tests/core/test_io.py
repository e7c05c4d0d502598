"""Readers keep spacing and geometry: DICOM series, zarr, TIFF."""

import numpy as np
import pytest

from napari_sammed.core.io.read import read_volume


def write_dicom_series(folder, volume, spacing=(3.0, 0.8, 0.7), orientation=(1, 0, 0, 0, 1, 0)):
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    folder.mkdir()
    series = generate_uid()
    order = np.random.default_rng(0).permutation(len(volume))  # files out of slice order
    for n, z in enumerate(order):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(folder / f"f{n}.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID, ds.SeriesInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID, series
        ds.Modality = "CT"
        ds.Rows, ds.Columns = volume.shape[1:]
        ds.PixelSpacing = [spacing[1], spacing[2]]
        ds.ImageOrientationPatient = list(orientation)
        normal = np.cross(orientation[:3], orientation[3:])
        ds.ImagePositionPatient = [float(v) for v in np.array([-10.0, -20.0, 5.0]) + spacing[0] * int(z) * normal]
        ds.SliceThickness = spacing[0]
        ds.RescaleIntercept, ds.RescaleSlope = -2048, 1  # the CT holds values below -1024 HU
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelData = (volume[z].astype(np.int32) + 2048).astype(np.uint16).tobytes()
        ds.save_as(str(folder / f"f{n}.dcm"), enforce_file_format=True)


def test_dicom_series_sorted_rescaled_with_spacing(tmp_path, ct_volume):
    volume = ct_volume[:6, :40, :50]
    write_dicom_series(tmp_path / "series", volume)
    (tmp_path / "series" / "README.txt").write_text("not dicom")
    read = read_volume(tmp_path / "series")
    assert read.data.dtype == np.int16
    assert np.array_equal(read.data, volume[::-1])  # written feet to head, shown head to feet
    assert read.spacing == pytest.approx((3.0, 0.8, 0.7))
    assert read.affine[:3, 3].tolist() == [-10.0, -20.0, 5.0]


def test_zarr_and_tiff_and_errors(tmp_path, ct_volume):
    import tifffile
    import zarr

    arr = zarr.open_array(str(tmp_path / "v.zarr"), mode="w", shape=(4, 10, 12), dtype="int16")
    arr[:] = ct_volume[:4, :10, :12]
    arr.attrs["spacing"] = [3.0, 1.5, 1.5]
    v = read_volume(tmp_path / "v.zarr")
    assert np.array_equal(v.data, ct_volume[:4, :10, :12]) and v.spacing == (3.0, 1.5, 1.5)
    tifffile.imwrite(tmp_path / "v.tif", ct_volume[:4], imagej=True, resolution=(1 / 0.5, 1 / 0.5),
                     metadata={"spacing": 2.0, "axes": "ZYX"})
    t = read_volume(tmp_path / "v.tif")
    assert t.spacing == pytest.approx((2.0, 0.5, 0.5))
    with pytest.raises(ValueError, match="unsupported"):
        (tmp_path / "x.txt").write_text("x")
        read_volume(tmp_path / "x.txt")
    with pytest.raises(ValueError, match="cannot read NIfTI"):
        (tmp_path / "bad.nii.gz").write_bytes(b"nope")
        read_volume(tmp_path / "bad.nii.gz")
