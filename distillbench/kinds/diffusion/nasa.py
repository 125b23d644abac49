"""NASA, Negative-Away Steer Attention (SNOOPI: Nguyen et al., "Supercharged One-step Text-to-Image Diffusion
Models with Negative Prompts", arXiv:2412.02687 v3, ICCV 2025, equations 7–9 and the ``NASA_AttnProcessor`` of its
appendix's algorithm 1; no code is public): a negative prompt for a one-step generator, which classifier-free
guidance cannot give (one evaluation leaves no room to steer). In every cross-attention layer the attention to
the negative prompt is subtracted from the attention to the prompt, with the layer's own projections:

    Z = softmax(Q K₊ᵀ/√d) V₊ − α · softmax(Q K₋ᵀ/√d) V₋        (K± = c± W_k, V± = c± W_v, the heads merged)

then the output projection (its bias added once) and dropout, as the layer's own processor does. The paper uses
α = 0.1 at inference for SD1.5-based students (0.2 SD2.1, 0.5 PixArt-α; U(0, 1) when training with it).
diffusers' attention processors are the hook: `negative_away` sets this one on the UNet's cross-attention layers
(``attn2``) for the duration of a sampling call and puts the layers' own back after.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
import torch.nn.functional as F


def attend(attn, query: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
    """softmax(Q Kᵀ/√d) V of the layer `attn` for `context` (its own key and value projections), heads merged:
    (batch, positions, heads × head_dim)."""
    if attn.norm_cross:
        context = attn.norm_encoder_hidden_states(context)
    key, value = attn.to_k(context), attn.to_v(context)
    batch, head_dim = query.shape[0], key.shape[-1] // attn.heads
    split = [tensor.view(batch, -1, attn.heads, head_dim).transpose(1, 2) for tensor in (query, key, value)]
    attended = F.scaled_dot_product_attention(*split, dropout_p=0.0, is_causal=False)
    return attended.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim).to(query.dtype)


class NegativeAwayAttnProcessor:
    """A cross-attention processor with NASA's subtraction (module docstring); `negative` holds the negative
    prompt's text-encoder states, one row per sample of the batch the UNet is called on."""

    def __init__(self, negative: torch.Tensor, scale: float):
        self.negative, self.scale = negative, scale

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None, **kwargs
                 ) -> torch.Tensor:
        if encoder_hidden_states is None or attention_mask is not None or attn.spatial_norm is not None:
            raise ValueError("NASA steers cross-attention layers without masks or spatial norms (SD's attn2)")
        residual, shape = hidden_states, hidden_states.shape
        if hidden_states.ndim == 4:
            hidden_states = hidden_states.flatten(2).transpose(1, 2)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(hidden_states)
        steered = attend(attn, query, encoder_hidden_states) - self.scale * attend(attn, query, self.negative)
        hidden_states = attn.to_out[1](attn.to_out[0](steered))
        if len(shape) == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(shape)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


@contextlib.contextmanager
def negative_away(unet, negative: torch.Tensor, scale: float) -> Iterator[None]:
    """`unet`'s cross-attention layers (``attn2``) steered away from the `negative` states while open."""
    own = dict(unet.attn_processors)
    steered = NegativeAwayAttnProcessor(negative, scale)
    unet.set_attn_processor({name: steered if name.endswith("attn2.processor") else processor
                             for name, processor in own.items()})
    try:
        yield
    finally:
        unet.set_attn_processor(own)
