"""Checkpoint reading: official layout, no code execution, strictness, clear errors, conversion."""

import os
import pickle
import subprocess
import sys

import pytest
import torch

import napari_sammed as ns
from napari_sammed.core.engine.families import convert_checkpoint, detect
from napari_sammed.core.io.hashing import sha256_file
from napari_sammed.core.model.build import build_sam_vit
from napari_sammed.core.model.checkpoints import CheckpointError, read_checkpoint
from napari_sammed.core.model.specs import VIT_SPECS
from tests.conftest import SMALL_SPEC


class Payload:
    """Unpickling this runs ``os.system(command)`` under plain pickle."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_official_layout_loads_strictly_and_records_sha(small_checkpoint):
    model = ns.load_model(small_checkpoint, device="cpu")
    assert model.spec.kind == "sam-med2d" and model.spec.adapters
    assert model.weights.sha256 == sha256_file(small_checkpoint)
    assert model.weights.format == "torch-official (inert unpickling)"
    saved = torch.load(small_checkpoint, weights_only=False)["model"]
    for key, value in model.network.state_dict().items():
        torch.testing.assert_close(value, saved[key], rtol=0, atol=0)
    ckpt = read_checkpoint(small_checkpoint)
    assert any("Adam" in name for name in ckpt.ignored)


def test_weights_only_refuses_official_layout(small_checkpoint):
    # The reason the inert unpickler exists: PyTorch's safe mode rejects the optimizer object.
    with pytest.raises(pickle.UnpicklingError):
        torch.load(small_checkpoint, weights_only=True)


@pytest.mark.slow  # builds and loads the full 271 M-parameter model (~1 GB); -m 'not slow' skips it
def test_full_size_official_checkpoint_loads(full_checkpoint):
    model = ns.load_model(full_checkpoint, device="cpu")
    assert model.spec == VIT_SPECS["sam-med2d"]
    assert model.spec.is_official_size
    assert sum(p.numel() for p in model.network.parameters()) > 270e6


def test_malicious_pickle_payload_never_runs(tmp_path, small_checkpoint):
    marker = tmp_path / "pwned"
    state = torch.load(small_checkpoint, weights_only=False)["model"]
    evil = tmp_path / "evil.pth"
    torch.save({"model": state, "optimizer": Payload(f"touch {marker}")}, evil)
    # Sanity: the file really is armed (plain unpickling would run the payload).
    code = f"import torch; torch.load({str(evil)!r}, weights_only=False)"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=120)
    assert marker.exists()
    marker.unlink()

    model = ns.load_model(evil, device="cpu")
    assert not marker.exists()
    assert model.spec.kind == "sam-med2d"
    assert "posix.system" in read_checkpoint(evil).ignored or "os.system" in read_checkpoint(evil).ignored


def test_payload_in_place_of_weights_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil2.pth"
    torch.save(Payload(f"touch {marker}"), evil)
    with pytest.raises(CheckpointError, match="no state dict"):
        ns.load_model(evil)
    assert not marker.exists()


def _edited_checkpoint(tmp_path, small_checkpoint, edit):
    state = dict(torch.load(small_checkpoint, weights_only=False)["model"])
    edit(state)
    path = tmp_path / "edited.pth"
    torch.save({"model": state}, path)
    return path


def test_missing_key_is_named(tmp_path, small_checkpoint):
    path = _edited_checkpoint(tmp_path, small_checkpoint,
                              lambda s: s.pop("image_encoder.blocks.0.Adapter.spatial.2.weight"))
    with pytest.raises(CheckpointError, match=r"missing 1: image_encoder\.blocks\.0\.Adapter\.spatial\.2\.weight"):
        ns.load_model(path)


def test_unexpected_and_misshaped_keys_are_named(tmp_path, small_checkpoint):
    def edit(s):
        s["mask_decoder.extra.weight"] = torch.zeros(3)
        s["mask_decoder.iou_token.weight"] = torch.zeros(2, 256)

    path = _edited_checkpoint(tmp_path, small_checkpoint, edit)
    with pytest.raises(CheckpointError) as info:
        ns.load_model(path)
    message = str(info.value)
    assert "unexpected 1: mask_decoder.extra.weight" in message
    assert "mask_decoder.iou_token.weight (2, 256)!=(1, 256)" in message
    assert "\n" not in message


def test_truncated_file_gives_one_line_error(tmp_path, small_checkpoint):
    data = small_checkpoint.read_bytes()
    bad = tmp_path / "truncated.pth"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt") as info:
        ns.load_model(bad)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("content", [b"hello, I am a text file\n", b"", b"\x00\x01\x02" * 100])
def test_non_checkpoint_files_are_refused(tmp_path, content):
    bad = tmp_path / "notes.pth"
    bad.write_bytes(content)
    with pytest.raises(CheckpointError) as info:
        ns.load_model(bad)
    assert "\n" not in str(info.value)


def test_missing_file_and_sha_mismatch(tmp_path, small_checkpoint):
    with pytest.raises(CheckpointError, match="not found"):
        ns.load_model(tmp_path / "nope.pth")
    with pytest.raises(CheckpointError, match="sha256 mismatch"):
        ns.load_model(small_checkpoint, sha256="0" * 64)
    ns.load_model(small_checkpoint, sha256=sha256_file(small_checkpoint))


def test_convert_writes_weights_only_file(tmp_path, small_checkpoint):
    out = tmp_path / "converted.safetensors"
    sha = convert_checkpoint(small_checkpoint, out)
    assert sha == sha256_file(out)
    assert (tmp_path / "converted.safetensors.sha256").read_text().startswith(sha)
    a = ns.load_model(small_checkpoint, device="cpu")
    b = ns.load_model(out, device="cpu")
    assert b.weights.format == "safetensors"
    for key, value in a.network.state_dict().items():
        assert torch.equal(value, b.network.state_dict()[key])
    with pytest.raises(FileExistsError, match="exists; pass overwrite"):
        convert_checkpoint(small_checkpoint, out)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".convert-")]


def test_convert_cli(tmp_path, small_checkpoint):
    from napari_sammed.cli import main

    out = tmp_path / "w.safetensors"
    assert main(["convert-checkpoint", str(small_checkpoint), str(out)]) == 0
    assert ns.load_model(out).spec.kind == "sam-med2d"
    assert main(["convert-checkpoint", str(tmp_path / "missing.pth"), str(tmp_path / "x.st")]) == 2


@pytest.mark.parametrize("kind", ["sam_vit_b", "sam_vit_l", "sam_vit_h"])
def test_detect_vanilla_sam_kinds(kind):
    state = build_sam_vit(VIT_SPECS[kind], device="meta").state_dict()
    assert detect(state)[1] == VIT_SPECS[kind]


def test_detect_sam_med2d_and_medsam():
    assert detect(build_sam_vit(VIT_SPECS["sam-med2d"], device="meta").state_dict())[1] == VIT_SPECS["sam-med2d"]
    vit_b = build_sam_vit(VIT_SPECS["sam_vit_b"], device="meta").state_dict()
    assert detect(vit_b, "medsam_vit_b.pth")[1] == VIT_SPECS["medsam"]
    assert detect(build_sam_vit(SMALL_SPEC, device="meta").state_dict())[1] == SMALL_SPEC


def test_requested_kind_must_fit(small_checkpoint):
    with pytest.raises(CheckpointError, match="not sam_vit_b"):
        ns.load_model(small_checkpoint, kind="sam_vit_b")


def test_bare_state_dict_of_vanilla_sam_loads(tmp_path):
    from napari_sammed.core.model.specs import ModelSpec

    spec = ModelSpec("sam_vit_b", 1024, 32, 2, 2, (1,), False, "sam")
    path = tmp_path / "sam_vit_b_small.pth"
    torch.save(build_sam_vit(spec).state_dict(), path)
    model = ns.load_model(path, device="cpu")
    assert model.spec == spec
    assert model.weights.format == "torch-weights-only"
