"""Prompts outside the slice, and SAMAug folders whose names collide or hold their own outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from skimage.io import imsave

from tests.hostile.conftest import one_line_error, run


@pytest.mark.parametrize(("prompt", "fragment"), [
    ({"box": [100, 100, 120, 130]}, "prompt for object 1 on slice 3: box [100, 100, 120, 130] lies outside the slice "
                                    "(x 0-40, y 0-40; x = column, y = row)"),
    ({"points": [[20, 20], [-3, 5]]}, "prompt for object 1 on slice 3: point [-3, 5] lies outside the slice"),
    ({"points": [[40, 10]]}, "point [40, 10] lies outside the slice"),
])
def test_prompts_outside_the_slice_are_refused(tmp_path, capsys, case_files, prompt, fragment):
    """These used to write an all-empty label volume and exit 0."""
    image, _ = case_files
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps({"objects": {"1": {"3": prompt}}}))
    out = tmp_path / "out.nii.gz"
    code, _, err = run(capsys, "propagate", image, prompts, out, "--kind", "weight-free")
    assert code == 2
    one_line_error(err, "propagate", fragment, prompts)
    assert not out.exists() and not (tmp_path / "out_qc.csv").exists()


def test_prompt_that_segments_nothing_is_refused(tmp_path, capsys, case_files, monkeypatch):
    from napari_sammed.core.engine import slice_engine as engine_module

    real = engine_module.SliceEngine.predict_batch

    def empty(self, *args, **kwargs):
        predictions = real(self, *args, **kwargs)
        for p in predictions:
            p.mask[:] = False
        return predictions

    monkeypatch.setattr(engine_module.SliceEngine, "predict_batch", empty)
    image, _ = case_files
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps({"objects": {"1": {"3": {"box": [14, 14, 26, 26]}}}}))
    out = tmp_path / "out.nii.gz"
    code, _, err = run(capsys, "propagate", image, prompts, out, "--kind", "weight-free")
    assert code == 2
    one_line_error(err, "propagate", "prompt for object 1 on slice 3 segments nothing", prompts)
    assert not out.exists()


def image_2d(value: int) -> np.ndarray:
    image = np.full((32, 32), 10, np.uint8)
    image[8:24, 8:24] = value
    return image


SAMAUG = ["--kind", "weight-free", "--points-per-side", "4"]


def test_samaug_same_stem_different_suffix_both_processed(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    imsave(str(folder / "a.png"), image_2d(200), check_contrast=False)
    tifffile.imwrite(folder / "a.tif", image_2d(120))
    imsave(str(folder / "b.png"), image_2d(90), check_contrast=False)
    code, out, err = run(capsys, "samaug", folder, tmp_path / "out", *SAMAUG)
    assert code == 0, err
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == sorted([f"{s}_{m}" for s in ("a.png", "a.tif") for m in
                            ("seg_prior.tif", "boundary_prior.tif", "augmented.tif", "augmented.png", "samaug.json")]
                           + [f"b_{m}" for m in ("seg_prior.tif", "boundary_prior.tif", "augmented.tif",
                                                 "augmented.png", "samaug.json")])
    assert "wrote 15 files" in out  # every file listed above, provenance JSON included
    sources = {json.loads((tmp_path / "out" / f"{s}_samaug.json").read_text())["source"] for s in ("a.png", "a.tif")}
    assert sources == {str(folder / "a.png"), str(folder / "a.tif")}
    augmented = [tifffile.imread(tmp_path / "out" / f"{s}_augmented.tif") for s in ("a.png", "a.tif")]
    assert not np.array_equal(augmented[0], augmented[1])  # each from its own image


@pytest.mark.parametrize("where", ["same", "inside"])
def test_samaug_output_in_the_input_folder_never_reads_its_outputs(tmp_path, capsys, where):
    folder = tmp_path / "in"
    folder.mkdir()
    imsave(str(folder / "a.png"), image_2d(200), check_contrast=False)
    tifffile.imwrite(folder / "c.tif", image_2d(120))
    outdir = folder if where == "same" else folder / "maps"
    for attempt in range(2):  # the rerun sees the first run's outputs in the folder
        code, out, err = run(capsys, "samaug", folder, outdir, *SAMAUG)
        assert code == 0, err
        assert out.startswith(f"wrote {10 if attempt == 0 else 0} files")  # 2 × (4 maps + JSON)
    expected = {f"{s}_{m}" for s in ("a", "c") for m in
                ("seg_prior.tif", "boundary_prior.tif", "augmented.tif", "augmented.png", "samaug.json")}
    produced = {p.name for p in outdir.iterdir()} - {"a.png", "c.tif", "maps"}
    assert produced == expected  # no a_seg_prior_seg_prior.tif and the like
