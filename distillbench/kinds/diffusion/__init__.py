"""Diffusion models: few-step students distilled from a frozen diffusion teacher (the `diffusion` kind, `kind`),
point models of the 2-D pocket world (`points`) and text-to-image pipelines (`images`, sampled by `sampling`),
and the `text-to-image` kind that scores pipelines as they are at given sampler settings (`text_to_image`)."""
