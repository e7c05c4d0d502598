"""Issue 24, item 8: every bad input is one line, exit 2, naming the file (or the argument)."""

from __future__ import annotations

import gzip
import json
import struct
import zlib

import nibabel as nib
import numpy as np
import pytest
import tifffile

from tests.hostile.conftest import (
    one_line_error,
    run,
    save_nifti,
    tiny_image,
    tiny_labels,
    write_dicom_series,
)

DEEP = "[" * 100_000 + "]" * 100_000
WEIGHT_FREE = ("--kind", "weight-free")


def png_bomb(path, side=20000):
    """A 20000 x 20000 grey PNG header with a few bytes of data: Pillow refuses it on opening."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(1000)))
                     + chunk(b"IEND", b""))
    return path


def grey_png(path, value=100):
    from PIL import Image

    image = np.full((40, 40), value, np.uint8)
    image[10:30, 10:30] = 220
    Image.fromarray(image).save(path)
    return path


class TestOneLineErrors:
    @pytest.mark.parametrize("what", ["prompts", "class names"])
    def test_json_nested_100000_deep(self, tmp_path, capsys, case_files, what):
        image, labels = case_files
        deep = tmp_path / "deep.json"
        deep.write_text(DEEP)
        if what == "prompts":
            code, _, err = run(capsys, "propagate", image, deep, tmp_path / "o.nii.gz", *WEIGHT_FREE)
            command = "propagate"
        else:
            code, _, err = run(capsys, "export", image, labels, tmp_path / "ds", "--format", "nnunet",
                               "--class-names", deep)
            command = "export"
        assert code == 2
        one_line_error(err, command, "not usable JSON: nested too deeply", deep)

    # the dataset index and provenance nested 100,000 deep: tests/hostile/test_inputs.py

    @pytest.mark.parametrize("command", ["evaluate", "samaug"])
    def test_png_of_20000_squared_pixels(self, tmp_path, capsys, command):
        if command == "evaluate":
            dataset = tmp_path / "ds"
            (dataset / "images").mkdir(parents=True)
            (dataset / "masks").mkdir()
            bomb = png_bomb(dataset / "images" / "x.png")
            grey_png(dataset / "masks" / "x_label_1_000.png")
            (dataset / "label2image_test.json").write_text(json.dumps({"ds/masks/x_label_1_000.png": "ds/images/x.png"}))
            code, _, err = run(capsys, "evaluate", dataset, *WEIGHT_FREE)
        else:
            bomb = png_bomb(tmp_path / "x.png")
            code, _, err = run(capsys, "samaug", bomb, tmp_path / "maps", *WEIGHT_FREE)
        assert code == 2
        one_line_error(err, command, "Image size (400000000 pixels) exceeds limit", bomb)

    def test_corrupt_png_in_a_samaug_folder_is_skipped_and_reported(self, tmp_path, capsys):
        folder = tmp_path / "images"
        folder.mkdir()
        grey_png(folder / "a.png")
        (folder / "b.png").write_bytes((folder / "a.png").read_bytes()[:60])  # truncated
        grey_png(folder / "c.png", 50)
        out = tmp_path / "maps"
        code, _, err = run(capsys, "samaug", folder, out, *WEIGHT_FREE)
        assert code == 2
        assert f"napari-sammed samaug: warning: {folder / 'b.png'}: cannot read image" in err
        err = "\n".join(line.strip() for line in err.splitlines() if not line.strip().startswith("SAMAug:"))  # bars
        one_line_error(err, "samaug", f"; skipped, and the maps of the other 2 images are in {out}", folder / "b.png")
        assert all((out / f"{stem}_{m}.tif").is_file() for stem in "ac" for m in ("seg_prior", "augmented"))

    def test_prompt_object_id_70000_is_kept(self, tmp_path, capsys, case_files):
        image, _ = case_files
        prompts = tmp_path / "prompts.json"
        prompts.write_text(json.dumps({"objects": {"70000": {"3": {"box": [14, 14, 26, 26]}}}}))
        out = tmp_path / "o.nii.gz"
        code, _, err = run(capsys, "propagate", image, prompts, out, *WEIGHT_FREE)
        assert code == 0, err
        labels = np.asarray(nib.load(str(out)).dataobj)
        assert labels.dtype == np.uint32 and set(np.unique(labels)) == {0, 70000}

    def test_prompt_object_id_beyond_32_bits(self, tmp_path, capsys, case_files):
        prompts = tmp_path / "prompts.json"
        prompts.write_text(json.dumps({"objects": {str(2**32): {"3": {"box": [14, 14, 26, 26]}}}}))
        code, _, err = run(capsys, "propagate", case_files[0], prompts, tmp_path / "o.nii.gz", *WEIGHT_FREE)
        assert code == 2
        one_line_error(err, "propagate", "object id 4294967296 is over 4294967295", prompts)

    def test_rgb24_nifti(self, tmp_path, capsys):
        rgb = np.zeros((8, 8, 4), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
        image = tmp_path / "rgb.nii.gz"
        nib.save(nib.Nifti1Image(rgb, np.eye(4)), str(image))
        code, _, err = run(capsys, "embed", image, "--cache-dir", tmp_path / "c", *WEIGHT_FREE)
        assert code == 2
        one_line_error(err, "embed", "voxels (NIfTI datatype RGB) are records", image)

    def test_complex_zarr_is_refused_and_bool_zarr_is_a_mask(self, tmp_path, capsys, case_files):
        import zarr

        image, _ = case_files
        mask = tiny_labels() > 0
        for kind, dtype in (("complex", np.complex64), ("bool", bool)):
            stored = zarr.create_array(store=str(tmp_path / f"{kind}.zarr"), shape=mask.shape, dtype=dtype)
            stored[...] = mask.astype(dtype)
        code, _, err = run(capsys, "embed", tmp_path / "complex.zarr", "--cache-dir", tmp_path / "c", *WEIGHT_FREE)
        assert code == 2
        one_line_error(err, "embed", "voxels are of type complex64: expected integers or real numbers",
                       tmp_path / "complex.zarr")
        code, out, err = run(capsys, "export", image, tmp_path / "bool.zarr", tmp_path / "st", "--format", "tiff")
        assert code == 0, err
        assert np.array_equal(tifffile.imread(tmp_path / "st" / "img_labels.tif"), mask.astype(np.uint16))
        code, out, err = run(capsys, "embed", tmp_path / "bool.zarr", "--cache-dir", tmp_path / "c", *WEIGHT_FREE)
        assert code == 0, err

    def test_rgb_tiff_volume_in_samaug(self, tmp_path, capsys):
        volume = tmp_path / "rgb.tif"
        tifffile.imwrite(volume, np.zeros((4, 32, 32, 3), np.uint8), photometric="rgb")
        code, _, err = run(capsys, "samaug", volume, tmp_path / "maps", *WEIGHT_FREE)
        assert code == 2
        one_line_error(err, "samaug", "is an RGB volume: give a grey (Z, Y, X) volume or a 2D image", volume)

    def test_nan_voxels(self, tmp_path, capsys):
        data = tiny_image().astype(np.float32)
        data[2, 5, 7] = np.nan
        image = save_nifti(tmp_path / "nan.nii.gz", data)
        code, _, err = run(capsys, "embed", image, "--cache-dir", tmp_path / "c", *WEIGHT_FREE)
        assert code == 2
        one_line_error(err, "embed", "1 voxel(s) are NaN or infinite (the first at index (", image)

    @pytest.mark.parametrize("bad", ["nan pixdim", "inf pixdim", "nan affine"])
    def test_nan_geometry_is_refused_before_export(self, tmp_path, capsys, case_files, bad):
        _, labels = case_files
        header = bytearray(save_nifti(tmp_path / "good.nii", tiny_image()).read_bytes())
        if bad == "nan affine":  # srow_y (the sform's second row), nibabel cannot write it
            header[296:312] = np.array([0.0, np.nan, 0.0, 0.0], "<f4").tobytes()
        else:  # pixdim[2]; without qform and sform the affine comes from pixdim
            header[84:88] = np.array([np.nan if bad == "nan pixdim" else np.inf], "<f4").tobytes()
            header[252:256] = np.array([0, 0], "<i2").tobytes()
        image = tmp_path / "bad.nii.gz"
        image.write_bytes(gzip.compress(bytes(header)))
        code, _, err = run(capsys, "export", image, labels, tmp_path / "raw", "--format", "nnunet")
        assert code == 2
        fragment = "the affine (voxel to world matrix) holds NaN" if bad == "nan affine" else "voxel spacing"
        one_line_error(err, "export", fragment, image)
        assert not (tmp_path / "raw").exists()

    def test_nan_geometry_of_a_layer_is_refused_at_writing(self, tmp_path):
        from napari_sammed.core.export import ExportCase, ExportOptions, export_case

        affine = np.diag([0.8, 0.8, np.nan, 1.0])  # what a napari layer's metadata may carry
        case = ExportCase("a", tiny_image(), tiny_labels(), {"spacing": [2.0, 0.8, 0.8], "affine": affine.tolist()})
        with pytest.raises(ValueError, match="holds NaN or infinite values; it cannot be written"):
            export_case(case, ExportOptions(format="nnunet", folder=str(tmp_path / "raw")))
        assert not list((tmp_path / "raw").rglob("*.nii.gz"))

    def test_case_name_with_a_trailing_newline(self, tmp_path, capsys, case_files):
        image, labels = case_files
        code, _, err = run(capsys, "export", image, labels, tmp_path / "st", "--format", "tiff", "--case", "a\n")
        assert code == 2
        one_line_error(err, "export", "case name 'a\\n': use letters, digits")
        assert not (tmp_path / "st").exists()

    def test_output_folder_dot_slash_writes_relative_index_paths(self, tmp_path, capsys, case_files, monkeypatch):
        image, labels = case_files
        (tmp_path / "ds").mkdir()
        monkeypatch.chdir(tmp_path / "ds")
        code, _, err = run(capsys, "export", image, labels, "./", "--format", "sammed2d", "--case", "a",
                           "--split", "train")
        assert code == 0, err
        index = json.loads((tmp_path / "ds" / "image2label_train.json").read_text())
        assert index and all(k.startswith("ds/images/a_") and all(m.startswith("ds/masks/a_") for m in v)
                             for k, v in index.items())

    @pytest.mark.parametrize(("positions", "fragment"), [
        ([0.0, 2.5, 7.5], "has a gap: no slice at position(s) 5.00 mm along the slice normal (step 2.50 mm, 3 slices)"),
        ([0.0, 2.5, 5.0, 8.7, 11.2], "has uneven slice spacing: 3.70 mm between the slices at 5.00 and 8.70 mm"),
    ], ids=["gap", "uneven"])
    def test_dicom_gaps_and_uneven_steps(self, tmp_path, capsys, positions, fragment):
        folder = tmp_path / "series"
        write_dicom_series(folder, "1.2.3", positions, 100, "s")
        code, _, err = run(capsys, "embed", folder, "--cache-dir", tmp_path / "c", *WEIGHT_FREE)
        assert code == 2
        one_line_error(err, "embed", f"series 1.2.3 {fragment}", folder)

    def test_propagate_side_file_is_not_replaced_without_overwrite(self, tmp_path, capsys, case_files):
        image, labels = case_files
        side = tmp_path / "o_qc.csv"
        side.write_text("my own notes\n")
        code, _, err = run(capsys, "propagate", image, labels, tmp_path / "o.nii.gz", *WEIGHT_FREE)
        assert code == 2
        one_line_error(err, "propagate", f"{side} exists; pass --overwrite to replace it")
        assert side.read_text() == "my own notes\n" and not (tmp_path / "o.nii.gz").exists()

    def test_convert_side_file_is_not_replaced_without_overwrite(self, tmp_path, capsys):
        from napari_sammed.core.model.lite_medsam import bundled_checkpoint

        side = tmp_path / "w.safetensors.sha256"
        side.write_text("my own digest\n")
        code, _, err = run(capsys, "convert-checkpoint", bundled_checkpoint(), tmp_path / "w.safetensors")
        assert code == 2
        one_line_error(err, "convert-checkpoint", f"{side} exists; pass --overwrite to replace it")
        assert side.read_text() == "my own digest\n" and not (tmp_path / "w.safetensors").exists()

    @pytest.mark.parametrize("array", ["done", "checksums"])
    def test_truncated_cache_chunk_is_rebuilt_not_fatal(self, tmp_path, capsys, case_files, array):
        image, _ = case_files
        cache = tmp_path / "cache"
        assert run(capsys, "embed", image, "--cache-dir", cache, *WEIGHT_FREE)[0] == 0
        (store,) = cache.iterdir()
        chunk = store / array / "c" / "0"
        chunk.write_bytes(chunk.read_bytes()[:3])
        for _ in range(2):  # every later run works
            code, out, err = run(capsys, "embed", image, "--cache-dir", cache, *WEIGHT_FREE)
            assert code == 0, err
        assert out.startswith("6 slices reused, 0 embedded")


def test_one_helper_quotes_a_library_error_on_one_line():
    # Issue 25: four private copies (io/read, io/dicom, model/checkpoints, model/checkpoint_scan)
    # and the dock's error_line did this; core/io/error_text.first_line is the one left.
    import re
    from pathlib import Path

    from napari_sammed.core.io.error_text import first_line

    assert first_line(ValueError("bad header\nTraceback noise")) == "bad header"
    assert first_line(AssertionError()) == "AssertionError" and len(first_line(OSError("x" * 999))) == 200
    src = Path(__file__).resolve().parents[2] / "src" / "napari_sammed"
    copies = [str(p.relative_to(src)) for p in src.rglob("*.py")
              if p.name != "error_text.py" and re.search(r"^def _?(first_line|error_line)\(", p.read_text(), re.M)]
    assert copies == []
