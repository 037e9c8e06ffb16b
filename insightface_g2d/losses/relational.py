"""Relational knowledge distillation (the student sees masked faces, the teacher the clean ones).

All three orders work on L2-normalised embeddings by default: face embeddings are compared by
cosine, so the relations that matter for recognition live on the unit sphere (the norm carries
image quality, not identity). The teacher side is a target: it is detached. Every function here
computes in float32 with autocast off (`float32_math`), also inside an fp16 or bf16 training step.

Cost for a batch of N embeddings of size D:
    first_order   O(N D)
    second_order  O(N^2 D) time, N(N-1)/2 x D memory for the pair differences
    third_order   O(N^2 D + N^3) time, O(N^3) memory: the angles come from the N x N Gram matrix,
                  never from an N x N x D tensor of differences. With autograd about five N x N x N
                  float32 tensors are alive: ~0.35 GB at N = 256, ~2.7 GB at N = 512. Fine for
                  batches up to 256 per device; give it weight 0 to skip it entirely.
"""
import torch
import torch.nn.functional as F

from .fp32 import float32_math


def _prepare(student, teacher, normalize):
    if student.dim() != 2 or teacher.dim() != 2 or student.shape[0] != teacher.shape[0]:
        raise ValueError(
            f"expected student N x Ds and teacher N x Dt with the same N, got {tuple(student.shape)} "
            f"and {tuple(teacher.shape)}"
        )
    dtype = torch.promote_types(student.dtype, torch.float32)  # never in half precision
    student, teacher = student.to(dtype), teacher.detach().to(dtype)
    if normalize:
        student, teacher = F.normalize(student, dim=1), F.normalize(teacher, dim=1)
    return student, teacher


@float32_math
def first_order(student, teacher):
    """Mean of 1 - cos(student_i, teacher_i). N x D, N x D (same D) -> scalar in [0, 2]."""
    if student.shape != teacher.shape:
        raise ValueError(
            f"first-order distillation needs student and teacher of the same shape, got "
            f"{tuple(student.shape)} and {tuple(teacher.shape)} (match num_features to the teacher's "
            "embedding size, or set the first-order weight to 0)"
        )
    dtype = torch.promote_types(student.dtype, torch.float32)
    return (1.0 - F.cosine_similarity(student.to(dtype), teacher.detach().to(dtype), dim=1, eps=1e-8)).mean()


@float32_math
def pair_distances(x):
    """N x D -> N(N-1)/2 euclidean distances of the pairs i < j (row-major order)."""
    i, j = torch.triu_indices(x.shape[0], x.shape[0], offset=1, device=x.device)
    return (x[i] - x[j]).norm(dim=1)


@float32_math
def second_order(student, teacher, normalize=True, beta=1.0):
    """RKD distance loss. N x Ds, N x Dt -> scalar.

    For each side, the pairwise euclidean distances d_ij (i != j) are divided by their mean over the
    off-diagonal pairs; the loss is the smooth-L1 (`beta`) between the two sets, averaged over pairs.
    Returns 0 for N < 2.
    """
    student, teacher = _prepare(student, teacher, normalize)
    if student.shape[0] < 2:
        return student.new_zeros(())
    ds, dt = pair_distances(student), pair_distances(teacher)
    ds = ds / ds.mean().clamp_min(1e-12)
    dt = dt / dt.mean().clamp_min(1e-12)
    return F.smooth_l1_loss(ds, dt, beta=beta)


@float32_math
def triplet_angles(x):
    """N x D -> N x N x N tensor A with A[j, i, k] = cos of the angle at x_j between x_i and x_k.

    A[j, i, k] = <e_ij, e_kj> with e_ij = (x_i - x_j) / |x_i - x_j|, computed from the Gram matrix
    G = x x^T as (G_ik - G_ij - G_jk + G_jj) / (d_ij d_kj): O(N^2 D + N^3) time, N^3 memory, no
    N x N x D tensor. Pairs closer than the rounding level of that computation (coincident points,
    i == j included) have no direction: their entries are 0.
    """
    g = x @ x.t()
    sq = g.diagonal()
    d2 = (sq.unsqueeze(0) + sq.unsqueeze(1) - 2.0 * g).clamp_min(0.0)
    # rounding level of the precision g was computed in (not of x: autocast may have lowered it)
    coincident = d2 <= 16 * torch.finfo(g.dtype).eps * sq.mean().detach().clamp_min(1e-30)
    inv = torch.where(coincident, torch.zeros_like(d2), torch.where(coincident, torch.ones_like(d2), d2).rsqrt())
    num = g.unsqueeze(0) - g.unsqueeze(2) - g.unsqueeze(1) + sq.view(-1, 1, 1)  # <x_i - x_j, x_k - x_j>
    return num * inv.unsqueeze(2) * inv.unsqueeze(1)


@float32_math
def third_order(student, teacher, normalize=True, beta=1.0):
    """RKD angle loss. N x Ds, N x Dt -> scalar.

    For every ordered triplet of distinct indices (i, j, k), the cosine of the angle at j between the
    unit difference vectors e_ij and e_kj is computed on each side; the loss is the smooth-L1 (`beta`)
    between the two sets, averaged over the N(N-1)(N-2) triplets. Returns 0 for N < 3.
    """
    student, teacher = _prepare(student, teacher, normalize)
    n = student.shape[0]
    if n < 3:
        return student.new_zeros(())
    with torch.no_grad():
        at = triplet_angles(teacher)
    per = F.smooth_l1_loss(triplet_angles(student), at, beta=beta, reduction="none")
    # Entries with i == j or k == j are exactly 0 on both sides; drop the i == k ones (always 1).
    total = per.sum() - per.diagonal(dim1=1, dim2=2).sum()
    return total / (n * (n - 1) * (n - 2))
