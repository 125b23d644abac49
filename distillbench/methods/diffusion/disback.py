"""DisBack — distribution backtracking (Zhang, Wang, Zhou, Zhang, Liu, Liu & Wang, "Distribution Backtracking
Builds A Faster Convergence Trajectory for Diffusion Distillation", arXiv:2408.15991; ICLR 2025).

Score distillation pulls the generator toward the teacher's score from the start, although the initial
generator's distribution is far from the teacher's. DisBack first records the path between them, then walks
it back:

1. Degradation recording (before the first step). A copy s′ of the teacher is fitted by denoising score
   matching to the initial generator's samples x = G⁰(z) for `degradation_steps` iterations, and
   `path_nodes` snapshots s′₁ … s′_N are kept, evenly spaced (s′_N fits G⁰; s′₀ is the teacher).
2. Distribution backtracking. The fake-score critic starts at s′_N, and the generator's real score walks
   the path back, s′_{N−1}, …, s′₁, then the teacher, moving one node every `node_interval` steps:

       g    = (x̂₀_fake(x_t) − x̂₀_target(x_t)) / mean_dims |x − x̂₀_target(x_t)|     (no gradient)
       L_G  = ½ ‖x − sg(x − g)‖² / N                                                  (DMD2's, `dmd2.DMD2`)

   with the critic trained every step on the generator's samples and the generator every `generator_every`.

As in the authors' code (SYZhang0805/DisBack@d015b5e, a fork of DMD2: ``main/degradation.py`` records the
path, ``main/train_sd.py`` switches the target; read, not copied), the losses are DMD2's, with its two time
scales and GAN head, and the degradation fits s′ with the same denoising loss and learning rate as the
critic. Two departures from that code, where it does not do what the paper and its README say: its
backtracking switches the target at most once (its test compares the node with a counter that grows every
step) and loads each node into the target with ``strict=False`` under keys that do not match (so nothing
loads); and its critic starts from DMD2's checkpoint, not from s′_N. Here the path is walked as the paper's
algorithm 1 describes, and G⁰ is the student at initialisation (the paper's; the code's is DMD2's trained
generator).

Defaults: the released SDXL scripts' (1,000 degradation iterations, a node every 100 of them, 1,000 steps per
node) and DMD2's (ratio 5, GAN weights 3·10⁻³ and 10⁻², t ∈ [0.02, 0.98]·T). The path nodes are kept in the
training module, so a resumed run finds them in its checkpoint. Cost: the degradation's iterations run before
the first step (in its seconds), and its `degradation_steps` × batch evaluations of the teacher-sized copy
count in the first step's teacher_forwards, as the nodes' real scores count in later steps'.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Annotated, Any

import torch
from annotated_types import Ge, Gt, Le
from torch import nn

from distillbench.methods.base import register_method
from distillbench.methods.diffusion.critic import GeneratorAndCritic, critic_denoising_loss, one_step_sample
from distillbench.methods.diffusion.dmd2 import DMD2


class BacktrackingModule(GeneratorAndCritic):
    """DMD2's generator, critic and GAN head, with the degradation path's nodes (frozen copies)."""

    def __init__(self, generator: nn.Module, discriminator: bool, nodes: int):
        super().__init__(generator, discriminator)
        self.path = nn.ModuleList(copy.deepcopy(generator).requires_grad_(False) for _ in range(nodes))


def backtracking_target(step: int, nodes: int, node_interval: int) -> int | None:
    """The path node (0-based: node i is s′_{i+1}) whose score the generator follows at `step`, None for the
    teacher: s′_{N−1} for the first `node_interval` steps, then one node closer to the teacher each interval."""
    index = nodes - 2 - step // node_interval
    return index if index >= 0 else None


@register_method("disback", family="diffusion", paper="Zhang et al. 2025, arXiv:2408.15991",
                 summary="DMD2 along a recorded degradation path walked back from the initial generator to the teacher")
@dataclass
class DisBack(DMD2):
    degradation_steps: Annotated[int, Gt(0)] = 1000
    path_nodes: Annotated[int, Gt(0)] = 10
    node_interval: Annotated[int, Gt(0)] = 1000
    generator_every: Annotated[int, Gt(0)] = 5
    min_timestep: Annotated[float, Ge(0), Le(1)] = 0.02
    max_timestep: Annotated[float, Ge(0), Le(1)] = 0.98

    generator_term = "distribution_matching"
    # how fast the path is walked back: the one choice the paper adds to DMD2's (whose ratio is kept at 5 here)
    search_space = {"node_interval": (25, 100)}

    def check(self) -> list[str]:
        problems = super().check()
        if self.degradation_steps % self.path_nodes:
            problems.append("path_nodes: must divide degradation_steps (the nodes are evenly spaced)")
        if self.generator_steps > 1:
            problems.append("generator_steps: DisBack's generator is one-step")
        return problems

    def training_module(self, student: nn.Module) -> nn.Module:
        return BacktrackingModule(student, self.gan_generator_weight > 0, self.path_nodes)

    def before_step(self, run) -> list[dict[str, Any]]:
        if run.step == 0:  # a run resumed later finds the path (and the critic at its end) in its checkpoint
            self.record_degradation_path(run)
        return super().before_step(run)

    def record_degradation_path(self, run) -> None:
        """Fit a copy of the teacher to the initial generator's samples, keeping `path_nodes` evenly spaced
        snapshots in the module; the critic starts from the last."""
        module, batching = run.unwrapped, run.batching
        teacher = run.frozen["teacher"]
        # a fresh copy (a diffusers model from its config), so nothing attached to the frozen teacher comes along
        degrading = type(teacher).from_config(teacher.config).to(run.device)
        degrading.load_state_dict(teacher.state_dict())
        optimizer = torch.optim.AdamW(degrading.parameters(), lr=run.budget.learning_rate,
                                      weight_decay=run.budget.weight_decay)
        draws = torch.Generator().manual_seed(run.seed * 7_919 + 29)
        every = self.degradation_steps // self.path_nodes
        for iteration in range(self.degradation_steps):
            labels = batching.prompts[torch.randint(len(batching.prompts), (run.budget.batch_size,), generator=draws)]
            labels = labels.masked_fill(torch.rand(len(labels), generator=draws) < batching.null_fraction,
                                        batching.null_class)
            noise = torch.randn((len(labels), *batching.sample_shape), generator=draws)
            labels, noise = labels.to(run.device), noise.to(run.device)
            with torch.no_grad():
                samples = one_step_sample(module.generator, batching.scheduler, noise, labels)
            optimizer.zero_grad(set_to_none=True)
            critic_denoising_loss(degrading, batching.scheduler, samples, labels, draws).backward()
            optimizer.step()
            if (iteration + 1) % every == 0:
                module.path[(iteration + 1) // every - 1].load_state_dict(degrading.state_dict())
        module.critic.load_state_dict(module.path[-1].state_dict())

    def real_score_model(self, module, batch: dict) -> nn.Module:
        node = backtracking_target(batch["step"], self.path_nodes, self.node_interval)
        return batch["teacher"] if node is None else module.path[node]

    def teacher_forwards(self, batch: dict) -> int:
        """DMD2's, plus the degradation's evaluations of the teacher-sized copy on the first step."""
        degradation = self.degradation_steps * len(batch["class_labels"]) if batch["step"] == 0 else 0
        return super().teacher_forwards(batch) + degradation
