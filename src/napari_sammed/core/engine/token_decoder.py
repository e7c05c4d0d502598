"""SAM's mask decoder for the CPU, rearranged around its shapes: a prompt is a few tokens, the
image is many (LiteMedSAM: 7 prompt tokens x 8 heads against 4,096 image tokens).

The same arithmetic as segment_anything's ``MaskDecoder.forward`` (its ``TwoWayTransformer``
included), in a different order:

* **Projections folded into the few tokens.** Attention between T prompt tokens and N image
  tokens never needs the image tokens' keys, values or queries themselves: ``q . (W x + b)`` is
  ``(W^T q) . x + q . b``, and a softmax-weighted sum of ``W x + b`` is ``W (sum p x) + b``. So
  the weights are applied to the 56 (token, head) vectors instead of the 4,096 image tokens:
  each image-side matmul shrinks from (4096 x 256 x 128) to (4096 x 256 x 56).
* **The positional encoding's projections are constants** of the model (``W pe + b``),
  computed once; ``image + pe`` is never formed.
* **The first layer's image side is cached per slice**: before the first attention no prompt has
  touched the image, so its keys, values and queries serve every later prompt on that slice.
* **Contiguous tokens, softmax along long rows**: scores are laid out (B, heads, T, N), so the
  softmax over T (image -> tokens) runs along contiguous rows of N.
* **The output upscaling as two matmuls** on the tokens: a 2x2 stride-2 transposed conv maps
  each pixel to its own 2x2 block, so pixels are put in image order only at the end, on the
  one-channel logits.

Same numbers as the original within float rounding (``tests/core/test_token_decoder.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


def as_tokens(x: Tensor) -> Tensor:
    """(B, C, H, W) -> contiguous (B, H*W, C) tokens."""
    return x.flatten(2).transpose(1, 2).contiguous()


def split_heads(x: Tensor, heads: int) -> Tensor:
    """(B, N, C) -> (B, heads, N, C / heads), a view."""
    b, n, c = x.shape
    return x.view(b, n, heads, c // heads).transpose(1, 2)


def merge_heads(x: Tensor) -> Tensor:
    """(B, heads, N, d) -> (B, N, heads * d)."""
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


def per_head(weight: Tensor, heads: int) -> Tensor:
    """A projection's (heads * d, C) weight as (heads, d, C)."""
    return weight.view(heads, weight.shape[0] // heads, weight.shape[1])


@dataclass(frozen=True)
class ImageSide:
    """The first layer's image side: depends on the slice alone (when there is no mask prompt)."""

    embedding: Tensor  # (1, C, H, W), the slice this belongs to
    keys: Tensor  # (1, N, C): image tokens plus the no-mask dense embedding
    t2i_k: Tensor  # tokens -> image: keys and values, (1, heads, N, d)
    t2i_v: Tensor
    i2t_q: Tensor  # image -> tokens: queries, (1, N, C')
    version: int | None = None  # embedding's version counter when computed (in-place writes bump it)

    def holds(self, embedding: Tensor) -> bool:
        """Whether ``embedding`` has this side's values. A tensor viewing the same memory in the
        same layout does, unless that memory was written since (the memory cannot have been
        reused: this side keeps it alive); any other tensor is compared element by element."""
        mine = self.embedding
        if (embedding.data_ptr() == mine.data_ptr() and embedding.shape == mine.shape
                and embedding.stride() == mine.stride() and embedding.dtype == mine.dtype):
            return version_of(embedding) == self.version
        return torch.equal(mine, embedding)


class TokenDecoder:
    """``decoder(embedding, sparse, dense)`` -> (B, M, L, L) low-res logits, (B, M) IoUs."""

    def __init__(self, prompt_encoder, mask_decoder) -> None:
        self.decoder = mask_decoder
        self.no_mask = prompt_encoder.no_mask_embed.weight.detach()  # (1, C): the dense prompt without a mask
        transformer = mask_decoder.transformer
        with torch.no_grad():
            pe = as_tokens(prompt_encoder.get_dense_pe())[0]
            # Every projection of "image + pe" is W x + (W pe + b); the second term is a constant.
            self.pe_projected = {
                linear: linear(pe)
                for layer in transformer.layers
                for linear in (layer.cross_attn_token_to_image.k_proj, layer.cross_attn_image_to_token.q_proj)
            }
            final_k = transformer.final_attn_token_to_image.k_proj
            self.pe_projected[final_k] = final_k(pe)
            self.upscale_weights = upscaling_as_matmuls(mask_decoder.output_upscaling)
        self._side: ImageSide | None = None

    def with_pe(self, linear, image: Tensor) -> Tensor:
        """``linear(image + pe)`` for (B, N, C) image tokens, from the precomputed ``W pe + b``."""
        return torch.matmul(image, linear.weight.t()).add_(self.pe_projected[linear])

    def image_side(self, embedding: Tensor) -> ImageSide:
        """The cached first-layer image side of ``embedding`` (1, C, H, W), computed on first use."""
        side = self._side
        if side is not None and side.holds(embedding):
            return side
        first = self.decoder.transformer.layers[0]
        t2i, i2t = first.cross_attn_token_to_image, first.cross_attn_image_to_token
        keys = as_tokens(embedding) + self.no_mask
        side = ImageSide(
            embedding=embedding,
            keys=keys,
            t2i_k=split_heads(self.with_pe(t2i.k_proj, keys), t2i.num_heads),
            t2i_v=split_heads(t2i.v_proj(keys), t2i.num_heads),
            i2t_q=self.with_pe(i2t.q_proj, keys),
            version=version_of(embedding),
        )
        self._side = side
        return side

    def __call__(self, embedding: Tensor, sparse: Tensor, dense: Tensor | None, multimask: bool):
        """``dense`` None means no mask prompt (the cached image side is used)."""
        decoder, transformer = self.decoder, self.decoder.transformer
        output_tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight])
        point_embedding = torch.cat([output_tokens.expand(len(sparse), -1, -1), sparse], dim=1)
        queries = point_embedding
        if dense is None:
            side = self.image_side(embedding)
            queries, keys = self.two_way_layer(transformer.layers[0], queries, side.keys, point_embedding, side)
        else:
            keys = as_tokens(embedding) + as_tokens(dense)
            queries, keys = self.two_way_layer(transformer.layers[0], queries, keys, point_embedding)
        for layer in transformer.layers[1:]:
            queries, keys = self.two_way_layer(layer, queries, keys, point_embedding)
        # Only the IoU token and the returned masks' tokens are read after the last attention.
        chosen = range(1, decoder.num_mask_tokens) if multimask else range(1)
        used = slice(0, 1 + chosen.stop)
        queries, point_embedding = queries[:, used], point_embedding[:, used]
        attn_out = self.tokens_to_image(transformer.final_attn_token_to_image, queries + point_embedding, keys)
        queries = transformer.norm_final_attn(queries + attn_out)

        hyper_in = torch.stack([decoder.output_hypernetworks_mlps[i](queries[:, 1 + i]) for i in chosen], dim=1)
        masks = upscaled_masks(decoder.output_upscaling, self.upscale_weights, keys, hyper_in)
        iou = decoder.iou_prediction_head(queries[:, 0])
        return masks, iou[:, chosen.start : chosen.stop]

    def two_way_layer(self, layer, queries: Tensor, keys: Tensor, query_pe: Tensor,
                      side: ImageSide | None = None) -> tuple[Tensor, Tensor]:
        """``TwoWayAttentionBlock.forward``; with ``side`` (first layer only) the image side comes
        from the cache and ``keys`` is the shared (1, N, C) image."""
        if layer.skip_first_layer_pe:
            queries = layer.self_attn(q=queries, k=queries, v=queries)
        else:
            q = queries + query_pe
            queries = queries + layer.self_attn(q=q, k=q, v=queries)
        queries = layer.norm1(queries)

        t2i = layer.cross_attn_token_to_image
        if side is None:
            attn_out = self.tokens_to_image(t2i, queries + query_pe, keys)
        else:
            q = split_heads(t2i.q_proj(queries + query_pe), t2i.num_heads)
            attn_out = t2i.out_proj(merge_heads(attend_shared(q, side.t2i_k, side.t2i_v)))
        queries = layer.norm2(queries + attn_out)
        queries = layer.norm3(queries + layer.mlp(queries))

        keys = self.image_to_tokens(layer.cross_attn_image_to_token, keys, queries + query_pe, queries,
                                    None if side is None else side.i2t_q)
        return queries, layer.norm4(keys)

    def tokens_to_image(self, attn, token_q: Tensor, image: Tensor) -> Tensor:
        """``attn(q=token_q, k=image + pe, v=image)`` for (B, T, C) tokens and (B or 1, N, C)
        image tokens, with the key and value projections folded into the T queries."""
        h = attn.num_heads
        q = split_heads(attn.q_proj(token_q), h)  # (B, h, T, d)
        b, _, t, d = q.shape
        n = image.shape[1]
        q = q * d**-0.5
        q_image = torch.matmul(q, per_head(attn.k_proj.weight, h)).view(b, h * t, -1)  # (B, hT, C)
        pe_k = self.pe_projected[attn.k_proj].view(n, h, d).permute(1, 2, 0)  # W pe + b: (h, d, N)
        scores = torch.matmul(q_image, image.transpose(1, 2)).add_(torch.matmul(q, pe_k).view(b, h * t, n))
        weighted = torch.matmul(torch.softmax(scores, dim=-1), image)  # (B, hT, C): sum p x
        v_proj = attn.v_proj
        out = torch.matmul(weighted.view(b, h, t, -1), per_head(v_proj.weight, h).transpose(1, 2))
        return attn.out_proj(merge_heads(out + v_proj.bias.view(h, 1, d)))

    def image_to_tokens(self, attn, image: Tensor, token_k: Tensor, token_v: Tensor,
                        image_q: Tensor | None = None) -> Tensor:
        """``image + attn(q=image + pe, k=token_k, v=token_v)`` for (B or 1, N, C) image tokens
        and (B, T, C) prompt tokens: the query projection is folded into the T keys (unless
        ``image_q``, the projected queries, is given), the output projection into the T values."""
        h = attn.num_heads
        k = split_heads(attn.k_proj(token_k), h)  # (B, h, T, d)
        v = split_heads(attn.v_proj(token_v), h)
        b, _, t, d = k.shape
        n = image.shape[1]
        k = k * d**-0.5
        if image_q is None:
            k_image = torch.matmul(k, per_head(attn.q_proj.weight, h)).view(b, h * t, -1)  # (B, hT, C)
            pe_q = self.pe_projected[attn.q_proj].view(n, h, d).permute(1, 2, 0)  # W pe + b: (h, d, N)
            scores = torch.matmul(k_image, image.transpose(1, 2)).add_(torch.matmul(k, pe_q).view(b, h * t, n))
        else:
            scores = torch.matmul(k, image_q.view(-1, n, h, d).permute(0, 2, 3, 1)).view(b, h * t, n)
        weights = torch.softmax(scores.view(b, h, t, n), dim=-2).view(b, h * t, n)
        values_out = torch.matmul(v, per_head(attn.out_proj.weight.t(), h))  # (B, h, T, C): v W_o
        out = torch.baddbmm(image, weights.transpose(1, 2), values_out.view(b, h * t, -1))
        return out.add_(attn.out_proj.bias)


def version_of(tensor: Tensor) -> int | None:
    """The tensor's in-place write counter; None for inference-mode tensors, which have none
    (and cannot be written outside inference mode)."""
    return None if tensor.is_inference() else tensor._version


def attend_shared(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """Softmax attention of (B, h, T, d) queries over keys/values (1, h, N, d) shared by all B:
    the B query sets are stacked into one batch (attention rows are independent)."""
    b, h, t, d = q.shape
    out = F.scaled_dot_product_attention(q.transpose(0, 1).reshape(1, h, b * t, d), k, v)
    return out.view(h, b, t, d).transpose(0, 1)


def activate_(activation, x: Tensor) -> Tensor:
    """``activation(x)``, in place for an exact GELU: a fresh 8 MB output costs more than the math."""
    if isinstance(activation, torch.nn.GELU) and activation.approximate == "none" and not torch.is_grad_enabled():
        return torch.ops.aten.gelu_(x)
    return activation(x)


def upscaling_as_matmuls(upscaling) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The two ConvTranspose2d(kernel 2, stride 2) of ``output_upscaling`` as matmul weights:
    (C_in, 4 * C_out) with columns ordered (dy, dx, out channel), and the biases repeated."""
    out = []
    for conv in (upscaling[0], upscaling[3]):
        c_in, c_out = conv.weight.shape[:2]
        out += [conv.weight.permute(0, 2, 3, 1).reshape(c_in, 4 * c_out), conv.bias.repeat(4)]
    return tuple(out)


def upscaled_masks(upscaling, weights, keys: Tensor, hyper_in: Tensor, chunk: int = 1024) -> Tensor:
    """``hyper_in @ output_upscaling(keys as an image)`` -> (B, M, 4H, 4W) logits.

    Each token (i, j) yields a 4 x 4 block of pixels (rows 4i + 2a + a2, cols 4j + 2b + b2);
    the blocks stay token-major until the final one-channel logits are put in image order.
    ``chunk`` tokens at a time: their 1-2 MB intermediates stay in cache, which is faster than
    whole 4-8 MB tensors (timings in docs/benchmarks.md).
    """
    w1, b1, w2, b2 = weights
    norm, act1, act2 = upscaling[1], upscaling[2], upscaling[4]
    b, n, c = keys.shape
    m, side = hyper_in.shape[1], int(round(n**0.5))
    logits = torch.empty(b, n * 16, m, dtype=keys.dtype, device=keys.device)
    for i in range(b):
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            x = torch.addmm(b1, keys[i, start:stop], w1).view(-1, norm.weight.shape[0])  # pixels at 2x
            x = activate_(act1, F.layer_norm(x, norm.weight.shape, norm.weight, norm.bias, norm.eps))
            x = activate_(act2, torch.addmm(b2, x, w2)).view(-1, hyper_in.shape[2])  # pixels at 4x
            torch.mm(x, hyper_in[i].t(), out=logits[i, 16 * start : 16 * stop])
    logits = logits.view(b, side, side, 2, 2, 2, 2, m).permute(0, 7, 1, 3, 5, 2, 4, 6)
    return logits.reshape(b, m, 4 * side, 4 * side)
