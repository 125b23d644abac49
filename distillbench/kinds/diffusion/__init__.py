"""Diffusion students (issue #24): few-step samplers distilled from a frozen diffusion teacher. So far the
point denoiser of the 2-D pocket world and its sampler (`points`); the kind itself comes next."""
