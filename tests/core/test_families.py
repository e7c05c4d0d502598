"""The model/backend contract: one registry of families, a Backend ABC that declares what is
called, and ``SliceEngine`` as the only way to a backend."""

from __future__ import annotations

import ast
import inspect
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_sammed.core.engine import families
from napari_sammed.core.engine.backends import Backend, SamVitBackend
from napari_sammed.core.engine.families import (
    FAMILIES,
    Family,
    backend_for,
    build_model,
    load_model,
    model_info,
)
from napari_sammed.core.engine.slice_engine import SliceEngine
from napari_sammed.core.model.build import build_sam_vit
from napari_sammed.core.model.checkpoints import CheckpointError
from napari_sammed.core.model.specs import ModelSpec, detect_vit
from tests.conftest import SMALL_SPEC

SRC = Path(__file__).resolve().parents[2] / "src" / "napari_sammed"
BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
#: Small random-init stand-ins where a family's published size is slow to build.
SMALL = {"vit": SMALL_SPEC}


def loaded_family(family: Family, tmp_path: Path):
    """A family's model through ``load_model``: a random-init checkpoint, or none if it takes none."""
    kind, spec = next(iter(family.kinds.items()))
    if family.detect is None:
        return load_model(kind=kind)
    torch.manual_seed(0)
    path = tmp_path / f"{family.name}.pth"
    torch.save(build_model(SMALL.get(family.name, spec)).network.state_dict(), path)
    return load_model(path, device="cpu")


def slice_with_square() -> np.ndarray:
    image = np.zeros((48, 64), np.uint8)
    image[12:30, 20:44] = 200
    return image


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_every_family_loads_through_load_model_and_runs_behind_the_engine(family, tmp_path):
    loaded = loaded_family(family, tmp_path)
    assert loaded.family == family.name and loaded.spec.kind in family.kinds
    assert (loaded.weights is None) == (family.detect is None)  # provenance: weights read, or none
    backend = backend_for(loaded)
    assert type(backend) is family.backend
    for name in Backend.__annotations__:  # every declared attribute is set
        assert hasattr(backend, name), (family.name, name)
    engine = SliceEngine(loaded)
    image = slice_with_square()
    embedding = engine.embed(image)
    assert tuple(embedding.shape) == (1, *engine.embedding_shape)
    box = np.array([18.0, 10.0, 46.0, 32.0])
    pred = engine.predict(embedding[0], image.shape, box=box, multimask=False)
    assert pred.mask.shape == image.shape and pred.low_res_logits.shape == (1, engine.low_res, engine.low_res)
    # decode_all, which automatic masks call, answers every family in the frame, as predict does
    frame_box = torch.as_tensor(engine.transform(image.shape).boxes(box), dtype=torch.float32)
    boxes = torch.cat([frame_box, torch.tensor([[10.0, 10.0, 90.0, 90.0]]) * engine.frame / 256])
    with torch.inference_mode():
        low, quality = engine.decode_all(engine.as_embedding(embedding[0]), None, None, boxes, multimask=False)
    assert low.shape == (2, 1, engine.low_res, engine.low_res) and quality.shape == (2, 1)
    np.testing.assert_allclose(low[0].numpy(), pred.low_res_logits, atol=1e-5, rtol=0)
    assert abs(float(quality[0, 0]) - pred.iou) <= 1e-5
    assert engine.describe()["kind"] == loaded.spec.kind


def test_backends_hold_to_the_declared_contract():
    assert {"embed", "decode", "decode_all", "describe"} <= Backend.__abstractmethods__
    for family in FAMILIES:
        assert issubclass(family.backend, Backend) and not inspect.isabstract(family.backend), family.name

    class NoDecodeAll(Backend):  # a backend that forgets what automatic masks call
        def embed(self, rgb):
            return torch.zeros(len(rgb), 1, 4, 4)

        def decode(self, embedding, tf, group, multimask):
            raise NotImplementedError

        def describe(self):
            return {}

    with pytest.raises(TypeError, match="decode_all"):
        NoDecodeAll()


def test_the_engine_calls_only_what_backend_declares():
    tree = ast.parse((SRC / "core" / "engine" / "slice_engine.py").read_text())
    used = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Attribute) and node.value.attr in ("backend", "_backend")}
    declared = set(dir(Backend)) | set(Backend.__annotations__)
    assert used and used <= declared, sorted(used - declared)


def test_no_caller_reaches_around_the_engine_to_its_backend():
    files = [*SRC.rglob("*.py"), *BENCHMARKS.glob("*.py")]
    hits = [f"{path.name}:{n}" for path in files if path.name != "slice_engine.py"
            for n, line in enumerate(path.read_text().splitlines(), 1) if re.search(r"\._?backend\.", line)]
    assert not hits, hits


def test_only_the_registry_tells_families_apart():
    backends = {"SamVitBackend", "LiteMedSamBackend", "WeightFreeBackend"}
    own = {"backends.py", "lite_medsam_backend.py", "weight_free_backend.py", "families.py"}
    rules = [r"\.family\s*==", r"isinstance\([^)]*\b(WeightFreeModel|ModelSpec|LiteMedSamSpec|WeightFreeSpec)\b"]
    hits = []
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        if path.name != "families.py":
            hits += [f"{path.name}: {rule}" for rule in rules if re.search(rule, text)]
        if path.name not in own:
            hits += [f"{path.name}: {name}" for name in backends if re.search(rf"\b{name}\b", text)]
    assert not hits, hits


@dataclass(frozen=True)
class ToySpec(ModelSpec):
    label = "Toy"


class ToyBackend(SamVitBackend):
    def propagation_recipe(self, slice_shape):
        return {"box_margin": 0.5, "min_margin": 1.0, "use_mask_prompt": False}


def detect_toy(state_dict, name_hint=""):
    spec = detect_vit(state_dict, name_hint) if "toy" in name_hint else None
    return None if spec is None else ToySpec(**{**spec.__dict__, "kind": "toy"})


def test_a_new_family_is_one_registry_entry(monkeypatch, tmp_path, small_checkpoint):
    toy_spec = ToySpec(**{**SMALL_SPEC.__dict__, "kind": "toy"})
    toy = Family("toy", {"toy": toy_spec}, build_sam_vit, ToyBackend, detect=detect_toy)
    monkeypatch.setattr(families, "FAMILIES", (toy, *FAMILIES))
    path = tmp_path / "my_toy.pth"
    torch.save(build_sam_vit(SMALL_SPEC).state_dict(), path)
    loaded = load_model(path, device="cpu")
    assert (loaded.family, loaded.spec) == ("toy", toy_spec)
    engine = SliceEngine(loaded)
    assert engine.label == "Toy" and engine.propagation_recipe((64, 64))["box_margin"] == 0.5
    assert model_info(path)["kind"] == "toy" and model_info(path)["label"] == "Toy"
    assert load_model(path, device="cpu", kind="toy").spec == toy_spec
    with pytest.raises(CheckpointError, match="not toy"):
        load_model(small_checkpoint, kind="toy")  # a SAM-Med2D is not a toy
    monkeypatch.setattr(families, "FAMILIES", tuple(f for f in FAMILIES if f.name != "vit"))
    with pytest.raises(CheckpointError, match="fit none of the known families"):
        load_model(small_checkpoint)  # without its family's entry, no SAM-Med2D loads


def test_loaded_model_is_a_frozen_record(tmp_path):
    loaded = loaded_family(families.family_named("vit"), tmp_path)
    with pytest.raises(AttributeError):
        loaded.spec = replace(loaded.spec)
    assert not hasattr(loaded.network, "spec") and not hasattr(loaded.network, "checkpoint_sha256")
