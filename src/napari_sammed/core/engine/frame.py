"""All geometry between a slice (H, W) and a model's square input frame lives here.

Four pre-processing modes (``ModelSpec.preprocess``):

- ``"sam-med2d"``: normalise with SAM's pixel mean/std, then *nearest* resize to S x S
  (OpenCV ``INTER_NEAREST`` indexing: source = floor(dst * src / dst)); no aspect keeping.
- ``"sam"``: bilinear (antialiased) resize of the longest side to S, normalise, pad bottom/right.
- ``"medsam"``: bilinear resize to S x S, min-max to [0, 1].
- ``"lite-medsam"``: as LiteMedSAM's official inference: OpenCV ``INTER_AREA`` resize of the
  longest side to S, min-max of the resized image to [0, 1], pad bottom/right; prompts scaled by
  S / max(H, W), box corners truncated to whole pixels.

:class:`ProtocolFrame` is SAM-Med2D's test protocol frame (``napari-sammed evaluate``), and
:func:`mask_box` the one way from a mask to its box. Coordinates are (x, y) pixels throughout;
boxes are XYXY, in pixel edges (x1, y1 one past the last pixel).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..model.specs import PIXEL_MEAN, PIXEL_STD

MODES = ("sam-med2d", "sam", "medsam", "lite-medsam")


def nearest_indices(src: int, dst: int) -> np.ndarray:
    """Source index for each destination pixel, as OpenCV's INTER_NEAREST picks it."""
    return np.minimum(np.floor(np.arange(dst) * (src / dst)).astype(np.int64), src - 1)


def longest_side_size(height: int, width: int, target: int) -> tuple[int, int]:
    """(H, W) scaled so that the longest side is ``target``, rounded half up (as the official code)."""
    scale = target / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


def mask_box(mask: np.ndarray) -> np.ndarray | None:
    """XYXY box (pixel edges) of a 2-D mask's pixels; None for an empty mask."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], float)


class FrameTransform:
    """Maps one slice size to one model frame and back."""

    def __init__(self, mode: str, frame: int, image_size: tuple[int, int]) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown preprocessing mode {mode!r}")
        self.mode, self.frame = mode, frame
        self.height, self.width = (int(image_size[0]), int(image_size[1]))
        self.padded = mode in ("sam", "lite-medsam")
        if self.padded:
            self.inner = longest_side_size(self.height, self.width, frame)
        else:
            self.inner = (frame, frame)
        if mode == "lite-medsam":
            self.scale = (frame / max(self.height, self.width),) * 2
        else:
            self.scale = (self.inner[1] / self.width, self.inner[0] / self.height)

    # ---- prompts -------------------------------------------------------------------------
    def coords(self, xy: np.ndarray) -> np.ndarray:
        """(..., 2) x, y in slice pixels -> model frame."""
        out = np.array(xy, dtype=np.float64, copy=True)
        out[..., 0] *= self.scale[0]
        out[..., 1] *= self.scale[1]
        return out

    def boxes(self, xyxy: np.ndarray) -> np.ndarray:
        """(..., 4) XYXY in slice pixels -> model frame."""
        out = self.coords(np.asarray(xyxy, dtype=np.float64).reshape(-1, 2, 2)).reshape(-1, 4)
        return np.trunc(out) if self.mode == "lite-medsam" else out

    # ---- images --------------------------------------------------------------------------
    def images(self, batch: torch.Tensor) -> torch.Tensor:
        """(N, H, W, 3) uint8 on any device -> (N, 3, S, S) float32 model input."""
        x = batch.permute(0, 3, 1, 2)
        device = x.device
        mean = torch.tensor(PIXEL_MEAN, device=device).view(1, 3, 1, 1)
        std = torch.tensor(PIXEL_STD, device=device).view(1, 3, 1, 1)
        if self.mode == "sam-med2d":
            rows = torch.from_numpy(nearest_indices(self.height, self.frame)).to(device)
            cols = torch.from_numpy(nearest_indices(self.width, self.frame)).to(device)
            x = x.index_select(2, rows).index_select(3, cols)
            return (x.float() - mean) / std
        if self.mode == "lite-medsam":
            return self._lite_medsam_images(batch)
        if self.mode == "sam":
            x = F.interpolate(x.float(), self.inner, mode="bilinear", align_corners=False, antialias=True)
            x = (x.round().clamp(0, 255) - mean) / std
            pad_h, pad_w = self.frame - self.inner[0], self.frame - self.inner[1]
            return F.pad(x, (0, pad_w, 0, pad_h))
        x = F.interpolate(x.float(), (self.frame, self.frame), mode="bilinear", align_corners=False, antialias=True)
        low = x.amin(dim=(1, 2, 3), keepdim=True)
        high = x.amax(dim=(1, 2, 3), keepdim=True)
        return (x - low) / (high - low).clamp_min(1e-8)

    def _lite_medsam_images(self, batch: torch.Tensor) -> torch.Tensor:
        import cv2  # OpenCV's INTER_AREA is the reference; torch has no bit-equal twin

        size = (self.inner[1], self.inner[0])
        resized = np.stack([cv2.resize(img, size, interpolation=cv2.INTER_AREA) for img in batch.cpu().numpy()])
        x = torch.from_numpy(resized).to(batch.device).permute(0, 3, 1, 2).float()
        low = x.amin(dim=(1, 2, 3), keepdim=True)
        high = x.amax(dim=(1, 2, 3), keepdim=True)
        x = (x - low) / (high - low).clamp_min(1e-8)
        return F.pad(x, (0, self.frame - self.inner[1], 0, self.frame - self.inner[0]))

    def masks(self, mask: np.ndarray) -> torch.Tensor:
        """(H, W) binary slice mask -> (1, 1, S, S) float32 in [0, 1], placed as the image is."""
        x = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None, None]
        if self.mode == "sam-med2d":
            rows = torch.from_numpy(nearest_indices(self.height, self.frame))
            cols = torch.from_numpy(nearest_indices(self.width, self.frame))
            return x.index_select(2, rows).index_select(3, cols)
        if self.padded:
            x = F.interpolate(x, self.inner, mode="bilinear", align_corners=False)
            return F.pad(x, (0, self.frame - self.inner[1], 0, self.frame - self.inner[0]))
        return F.interpolate(x, (self.frame, self.frame), mode="bilinear", align_corners=False)

    # ---- outputs -------------------------------------------------------------------------
    def logits(self, frame_logits: torch.Tensor) -> torch.Tensor:
        """(B, 1, S, S) logits in the model frame -> (B, 1, H, W) at slice size (bilinear)."""
        x = frame_logits
        if self.padded:
            x = x[..., : self.inner[0], : self.inner[1]]
        return F.interpolate(x, (self.height, self.width), mode="bilinear", align_corners=False)


class ProtocolFrame:
    """SAM-Med2D's test protocol frame: an image smaller than ``size`` on both sides is zero-padded
    (centred), any other nearest-resized to ``size`` x ``size``; logits go back by cropping the
    pad or by bilinear resizing."""

    def __init__(self, height: int, width: int, size: int) -> None:
        self.height, self.width, self.size = height, width, size
        self.pad = height < size and width < size
        self.top, self.left = (size - height) // 2, (size - width) // 2

    def forward(self, array: np.ndarray) -> np.ndarray:
        """(H, W, ...) slice array -> (size, size, ...) in the frame."""
        if self.pad:
            out = np.zeros((self.size, self.size, *array.shape[2:]), array.dtype)
            out[self.top : self.top + self.height, self.left : self.left + self.width] = array
            return out
        rows, cols = nearest_indices(self.height, self.size), nearest_indices(self.width, self.size)
        return array[rows][:, cols]

    def back(self, logits: np.ndarray) -> np.ndarray:
        """(size, size) logits in the frame -> (H, W) at slice size."""
        if self.pad:
            return logits[self.top : self.top + self.height, self.left : self.left + self.width]
        x = torch.from_numpy(np.ascontiguousarray(logits, np.float32))[None, None]
        return F.interpolate(x, (self.height, self.width), mode="bilinear", align_corners=False)[0, 0].numpy()
