"""Fair latent distillation (Sikder, Ramachandranpillai, de Leng & Heintz, "Generating Synthetic Fair
Syntax-agnostic Data by Learning and Distilling Fair Representation", arXiv:2408.10755).

Two stages. (1) Fair representation: a VAE over every column of a row x (any data type: "syntax-agnostic")
whose latent is pushed to be independent of the sensitive attribute s by a distance-covariance penalty:

    L_teacher = recon(x, D(z)) + w_kl · KL(q_T(z|x) ‖ N(0, I)) + λ · dCov²(μ_T(x), s)

(2) Distillation in the latent space: a smaller encoder q_S learns the teacher's fair latent, with a
quality loss (matching the fair codes) and a KL-based utility loss, and the teacher's decoder D is shared:

    L_student = w_q · mean_i ‖μ_S(x_i) − μ_T(x_i)‖²/d + w_u · mean_i KL(q_T(z|x_i) ‖ q_S(z|x_i))

Synthetic rows are D(z) for z drawn from the student's codes of training rows (z = μ_S + σ_S·ε), numeric
columns with the decoder's learned noise, categorical columns (sensitive attribute and label included)
sampled from its softmax. dCov² is the V-statistic of Székely et al. (2007): the mean of the products of the
double-centred pairwise distance matrices. What is taken from the paper's abstract and summaries: the dCov
regularised VAE teacher (a summary of the paper: "a distance covariance term (V²(z, s)) aimed at reducing
dependency between the latent encoding (z) and the sensitive attributes (s)"), the smaller student, the
shared decoder, the quality and KL-based utility losses.
Not verified (the full text could not be read here): the exact form of both losses (squared error, Gaussian
KL), the weights (here w_kl = w_q = w_u = 1, λ = 5), the architecture sizes and how the student's latent is
sampled for generation. ``fairness_weight: 0`` gives the same pipeline without the fairness penalty: the
unfair baseline generator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

import torch
from annotated_types import Ge, Gt
from torch import nn
from torch.nn import functional as F

from distillbench.core.errors import NonFiniteError
from distillbench.kinds.tabular.data import ROW_BLOCKS, TabularData, decode_rows
from distillbench.methods.base import Method, register_method


# --- pure losses ---------------------------------------------------------------------------------------
def distance_covariance_squared(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """V-statistic dCov²(x, y) of samples x [N, p], y [N, q]: mean(A ∘ B) with A, B the double-centred
    Euclidean distance matrices. Zero iff the empirical distributions are independent (in the limit)."""
    def centred(samples):
        distances = _pairwise_distances(samples.float())
        return distances - distances.mean(0, keepdim=True) - distances.mean(1, keepdim=True) + distances.mean()

    return (centred(x) * centred(y)).mean()


def _pairwise_distances(samples: torch.Tensor) -> torch.Tensor:
    # sqrt has an infinite derivative at 0 (every diagonal entry): differentiate through the squared
    # distance, and give the zero ones a zero gradient.
    squared = (samples.unsqueeze(1) - samples.unsqueeze(0)).pow(2).sum(-1)
    positive = squared > 0
    return torch.where(positive, squared.clamp_min(torch.finfo(squared.dtype).tiny).sqrt(), torch.zeros_like(squared))


def gaussian_kl(mean_p: torch.Tensor, logvar_p: torch.Tensor, mean_q: torch.Tensor, logvar_q: torch.Tensor
                ) -> torch.Tensor:
    """[N] KL(N(μ_p, σ_p²) ‖ N(μ_q, σ_q²)) of diagonal Gaussians, summed over the latent dimensions."""
    return 0.5 * (logvar_q - logvar_p + (logvar_p.exp() + (mean_p - mean_q) ** 2) / logvar_q.exp() - 1).sum(-1)


def fair_distillation_loss(student_mean: torch.Tensor, student_logvar: torch.Tensor, teacher_mean: torch.Tensor,
                           teacher_logvar: torch.Tensor, quality_weight: float = 1.0, utility_weight: float = 1.0
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """(w_q · quality, w_u · utility): the mean squared error between the codes' means and the mean over rows
    of KL(teacher posterior ‖ student posterior). All [N, d]."""
    quality = F.mse_loss(student_mean.float(), teacher_mean.float())
    utility = gaussian_kl(teacher_mean.float(), teacher_logvar.float(), student_mean.float(),
                          student_logvar.float()).mean()
    return quality_weight * quality, utility_weight * utility


# --- models ----------------------------------------------------------------------------------------------
class GaussianEncoder(nn.Module):
    """Encoded row → (mean, log-variance) of a diagonal Gaussian code."""

    def __init__(self, row_dim: int, hidden: int, latent_dim: int):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(row_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.out = nn.Linear(hidden, 2 * latent_dim)

    def forward(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = self.out(self.body(rows)).chunk(2, dim=-1)
        return mean, logvar.clamp(-10, 10)


class RowDecoder(nn.Module):
    """Code → numeric means (with a learned per-column log-std) and logits of each categorical block."""

    def __init__(self, latent_dim: int, hidden: int):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                  nn.Linear(hidden, sum(ROW_BLOCKS)))
        self.numeric_logstd = nn.Parameter(torch.zeros(ROW_BLOCKS[0]))

    def forward(self, codes: torch.Tensor) -> list[torch.Tensor]:
        return list(self.body(codes).split(ROW_BLOCKS, dim=-1))


def reconstruction_loss(decoded: list[torch.Tensor], numeric_logstd: torch.Tensor, data: TabularData) -> torch.Tensor:
    """Mean over rows of the negative log-likelihood: Gaussian numeric columns (constant dropped) plus the
    cross-entropy of region, education, group and label."""
    numeric = ((decoded[0] - data.numeric) ** 2 / (2 * (2 * numeric_logstd).exp()) + numeric_logstd).sum(1).mean()
    targets = [data.categorical[:, 0], data.categorical[:, 1], data.group, data.label]
    return numeric + sum(F.cross_entropy(logits, target) for logits, target in zip(decoded[1:], targets))


class FairGenerator(nn.Module):
    """The distilled generator: the student encoder over the training rows it was fitted on, and the shared decoder."""

    def __init__(self, encoder: GaussianEncoder, decoder: RowDecoder, rows: torch.Tensor):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.register_buffer("rows", rows)

    @torch.no_grad()
    def sample(self, count: int, seed: int = 0) -> TabularData:
        generator = torch.Generator().manual_seed(seed)
        picked = torch.randint(len(self.rows), (count,), generator=generator)
        mean, logvar = self.encoder(self.rows[picked])
        codes = mean + (0.5 * logvar).exp() * torch.randn(mean.shape, generator=generator)
        decoded = self.decoder(codes)
        numeric = decoded[0] + self.decoder.numeric_logstd.exp() * torch.randn(decoded[0].shape, generator=generator)
        return decode_rows(numeric, decoded[1:], generator)


# --- the method ---------------------------------------------------------------------------------------
@register_method("fair-latent", family="classify", paper="Sikder et al. 2024, arXiv:2408.10755",
                 summary="tabular: a dCov-regularised fair VAE, its latent distilled into a small encoder; synthetic "
                         "rows decoded by the shared decoder")
@dataclass
class FairLatent(Method):
    """Learn a fair latent (VAE + distance-covariance penalty), distil it into a smaller encoder, generate."""

    latent_dim: Annotated[int, Gt(0)] = 8
    teacher_hidden: Annotated[int, Gt(0)] = 64
    student_hidden: Annotated[int, Gt(0)] = 16
    kl_weight: Annotated[float, Ge(0)] = 1.0
    fairness_weight: Annotated[float, Ge(0)] = 5.0  # λ on dCov²(μ_T, s); 0: the unfair baseline
    quality_weight: Annotated[float, Ge(0)] = 1.0
    utility_weight: Annotated[float, Ge(0)] = 1.0
    teacher_steps: Annotated[int, Gt(0)] = 1500
    student_steps: Annotated[int, Gt(0)] = 1000
    batch_size: Annotated[int, Gt(1)] = 256
    learning_rate: Annotated[float, Gt(0)] = 1e-3

    data_kind: ClassVar[str] = "tabular"
    normalize_by: ClassVar[str] = "examples"

    def loss(self, student, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """The distillation step: `student` a `GaussianEncoder`; the batch holds ``rows`` and the frozen
        teacher's ``teacher_mean`` / ``teacher_logvar`` of them."""
        mean, logvar = student(batch["rows"])
        quality, utility = fair_distillation_loss(mean, logvar, batch["teacher_mean"], batch["teacher_logvar"],
                                                  self.quality_weight, self.utility_weight)
        return {"quality": quality, "utility": utility}

    def teacher_loss(self, encoder: GaussianEncoder, decoder: RowDecoder, data: TabularData,
                     noise: torch.Tensor) -> dict[str, torch.Tensor]:
        rows = data.rows()
        mean, logvar = encoder(rows)
        codes = mean + (0.5 * logvar).exp() * noise
        prior = gaussian_kl(mean, logvar, torch.zeros_like(mean), torch.zeros_like(logvar)).mean()
        terms = {"reconstruction": reconstruction_loss(decoder(codes), decoder.numeric_logstd, data),
                 "kl": self.kl_weight * prior}
        if self.fairness_weight:
            terms["fairness"] = self.fairness_weight * distance_covariance_squared(mean, data.group.float()[:, None])
        return terms

    def _networks(self, row_dim: int) -> tuple[GaussianEncoder, RowDecoder, GaussianEncoder]:
        """The teacher encoder, the shared decoder and the student encoder, initialised from torch's global RNG."""
        return (GaussianEncoder(row_dim, self.teacher_hidden, self.latent_dim),
                RowDecoder(self.latent_dim, self.teacher_hidden),
                GaussianEncoder(row_dim, self.student_hidden, self.latent_dim))

    def training_cost(self, data: TabularData) -> dict[str, int]:
        """What `fit` on `data` trains, for a row's cost: optimizer steps of both stages, rows drawn, rows the
        frozen teacher encodes in the student stage, and the parameters trained (the teacher VAE and the student)."""
        with torch.random.fork_rng(devices=[]):  # counting parameters leaves the global random state alone
            trained = sum(p.numel() for network in self._networks(data.rows().shape[1]) for p in network.parameters())
        steps = self.teacher_steps + self.student_steps
        return {"steps": steps, "rows": steps * self.batch_size, "teacher_forwards": self.student_steps * self.batch_size,
                "trained_parameters": trained}

    def empty_generator(self, rows: torch.Tensor) -> FairGenerator:
        """A generator of this method's shape over `rows`, weights to be loaded (`kinds.tabular.generators`)."""
        return FairGenerator(GaussianEncoder(rows.shape[1], self.student_hidden, self.latent_dim),
                             RowDecoder(self.latent_dim, self.teacher_hidden), rows)

    def fit(self, data: TabularData, seed: int, log=None) -> FairGenerator:
        """Both stages on `data` (Adam, full passes of seeded random batches); a function of (data, seed)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            encoder, decoder, student = self._networks(data.rows().shape[1])
            generator = torch.Generator().manual_seed(seed)
            optimizer = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=self.learning_rate)
            for step in range(self.teacher_steps):
                batch = data.subset(torch.randint(len(data), (self.batch_size,), generator=generator))
                terms = self.teacher_loss(encoder, decoder, batch,
                                          torch.randn(self.batch_size, self.latent_dim, generator=generator))
                _step(optimizer, terms, log, "teacher", step)
            encoder.requires_grad_(False)
            decoder.requires_grad_(False)
            optimizer = torch.optim.Adam(student.parameters(), lr=self.learning_rate)
            for step in range(self.student_steps):
                rows = data.rows()[torch.randint(len(data), (self.batch_size,), generator=generator)]
                teacher_mean, teacher_logvar = encoder(rows)
                terms = self.loss(student, {"rows": rows, "teacher_mean": teacher_mean,
                                            "teacher_logvar": teacher_logvar})
                _step(optimizer, terms, log, "student", step)
        return FairGenerator(student, decoder, data.rows()).eval()


def _step(optimizer, terms: dict[str, torch.Tensor], log, stage: str, step: int) -> None:
    loss = sum(terms.values())
    if not torch.isfinite(loss):
        raise NonFiniteError(step + 1, f"fair-latent {stage} loss ({loss.item()})")  # the cell fails, the run goes on
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if log is not None and (step + 1) % 100 == 0:
        log({"stage": stage, "step": step + 1, **{k: round(float(v), 4) for k, v in terms.items()}})
