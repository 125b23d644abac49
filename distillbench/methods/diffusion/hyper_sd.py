"""Hyper-SD — trajectory segmented consistency distillation, TSCD (Ren, Xia, Lu, Zhang, Wu, Xiao, Zheng & Pan,
"Hyper-SD: Trajectory Segmented Consistency Model for Efficient Image Synthesis", arXiv:2404.13686; NeurIPS 2024).

Consistency distillation that keeps its targets inside segments of the trajectory and merges the segments
stage by stage. With k segments of the T training timesteps, a DDIM timestep t_n of the teacher's skipping
schedule (`ddim_steps` steps) and the previous one t_{n−1} (eq. 11, 12 and algorithm 1):

    x_{t_n}     = α_{t_n} x₀ + σ_{t_n} ε
    x̂_{t_{n−1}} = Ψ(x_{t_n}, f_teacher(x_{t_n}, t_n), t_{n−1})                    (one DDIM step; no gradient)
    t_b         = ⌊t_n / (T/k)⌋ · T/k                                           (the start of t_n's segment)
    t_end       ~ U[t_b, t_{n−1}]
    L_TSCD      = d(Ψ(x_{t_n}, f_θ(x_{t_n}, t_n), t_end), Ψ(x̂_{t_{n−1}}, f_θ⁻(x̂_{t_{n−1}}, t_{n−1}), t_end))

Ψ is the DDIM jump (`lcm.ddim_step`), f_θ⁻ an EMA of the student (no gradient), and k runs through `segments`,
one stage each (the paper's 8 → 4 → 2 → 1, each stage continuing the last; k = 1 is CTM's loss, its target
anywhere down to t = 0). The student so learns to jump to the start of its segment, and at k = 1 to x₀, so it
is sampled with the multistep consistency sampler (`points-2d`'s `sampler: lcm`).

Departures, each because the paper leaves it open: d is the mean square alone (the paper blends it with
SDXL-Lightning's adversarial loss, weighted up stage by stage, with weights it does not give); the human
feedback LoRA and the one-step DMD stage (its sections 3.2–3.3) are not part of this loss; and the paper gives
neither its N nor its EMA rate, so `ddim_steps` = 40 (a skip of 25 timesteps, which lines the DDIM schedule up
with the segment edges of 8, 4, 2 and 1 segments) and LCM's EMA 0.95 are this file's choices. No training code
was released (ByteDance published weights only). A DDIM step that crosses its segment's start (t_{n−1} < t_b,
from the schedule's offset of one timestep) takes t_end = t_{n−1}.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
import torch.nn.functional as F
from annotated_types import Ge, Gt, Lt

from distillbench.kinds.diffusion.points import guided
from distillbench.methods.base import Staged, register_method
from distillbench.methods.diffusion.lcm import ConsistencyTraining, ddim_step


def segment_start(timesteps: torch.Tensor, total: int, segments: int) -> torch.Tensor:
    """t_b = ⌊t / (T/k)⌋ · T/k, floored to a timestep: the first timestep of the segment that holds t."""
    return torch.floor(torch.div(timesteps * segments, total, rounding_mode="floor") * total / segments).long()


def segment_ends(start: torch.Tensor, previous: torch.Tensor, total: int, segments: int,
                 generator: torch.Generator) -> torch.Tensor:
    """t_end ~ U{t_b, …, t_{n−1}} per sample (t_{n−1} itself where the DDIM step leaves the segment)."""
    low = torch.minimum(segment_start(start, total, segments), previous)
    draws = torch.rand(len(start), generator=generator).to(start.device)
    return low + torch.floor(draws * (previous - low + 1)).long().clamp_max(previous - low)


def tscd_loss(student_jump: torch.Tensor, target_jump: torch.Tensor) -> torch.Tensor:
    """d of eq. 12 as the mean square between the student's jump and the EMA target's (held fixed)."""
    return F.mse_loss(student_jump.float(), target_jump.detach().float())


@register_method("hyper-sd", family="diffusion", paper="Ren et al. 2024, arXiv:2404.13686",
                 summary="trajectory segmented consistency distillation: consistency within 8, 4, 2, then 1 "
                         "segments, one stage each")
@dataclass
class HyperSD(Staged, ConsistencyTraining):
    segments: tuple[int, ...] = (8, 4, 2, 1)
    ddim_steps: Annotated[int, Gt(1)] = 40
    guidance: Annotated[float, Ge(1)] = 1.0
    ema_decay: Annotated[float, Ge(0), Lt(1)] = 0.95

    search_space = {"ema_decay": (0.95, 0.99)}  # LCM's: the same tuning budget as the consistency baseline

    @property
    def stages(self) -> int:
        return len(self.segments)

    def check(self) -> list[str]:
        if not self.segments or any(k <= 0 for k in self.segments):
            return ["segments: one positive count of segments per stage"]
        return []

    def loss(self, student, batch: dict) -> dict[str, torch.Tensor]:
        scheduler, labels, generator, clean = batch["scheduler"], batch["class_labels"], batch["generator"], batch["clean"]
        total, segments = scheduler.config.num_train_timesteps, self.segments[batch["stage"]]
        skip = total // self.ddim_steps
        index = torch.randint(self.ddim_steps, (len(clean),), generator=generator)
        start = (index * skip + skip - 1).to(clean.device)  # LCM's DDIM timesteps skip−1, …, T−1
        previous = (start - skip).clamp_min(0)
        noise = torch.randn(clean.shape, generator=generator).to(clean.device)
        end = segment_ends(start, previous, total, segments, generator)
        noisy = scheduler.add_noise(clean, noise, start)
        jump = ddim_step(scheduler, noisy, student.student(noisy, start, labels), start, end)
        with torch.no_grad():
            teacher_step = ddim_step(scheduler, noisy, guided(batch["teacher"], noisy, start, labels, self.guidance),
                                     start, previous)
            target = ddim_step(scheduler, teacher_step, student.target(teacher_step, previous, labels), previous, end)
        return {"tscd": tscd_loss(jump, target)}
