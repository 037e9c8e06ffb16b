"""Losses checked against independent computations (explicit loops in numpy / python math)."""
import itertools
import math

import numpy as np
import pytest
import torch

from insightface_g2d.errors import ConfigError, DataError, TrainingError
from insightface_g2d.losses import (
    MarginHead, SoftmaxHead, build_head, check_finite, first_order, hinge_d_loss, hinge_g_loss, identity_loss,
    margin_logits, masked_l1, second_order, third_order,
)
from insightface_g2d.losses.registry import DISTILLATION_LOSSES, distillation_terms


def weighted_distillation(student, teacher, weights):
    """(sum of weight * term, {name: term}) over the registry's terms with a non-zero weight."""
    terms = distillation_terms(student, teacher, weights)
    return sum(weights[name] * value for name, value in terms.items()), terms


def rng_tensor(*shape, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).normal(size=shape).astype(np.float64))


def np_unit(v):
    return v / np.linalg.norm(v)


def np_smooth_l1(a, b, beta=1.0):
    d = abs(a - b)
    return 0.5 * d * d / beta if d < beta else d - 0.5 * beta


# ---------------------------------------------------------------- inpainting losses

@pytest.mark.parametrize("alpha_dims", [3, 4])
def test_masked_l1_weights_hole_pixels(alpha_dims):
    restored, clean = rng_tensor(2, 3, 4, 5, seed=1), rng_tensor(2, 3, 4, 5, seed=2)
    alpha = torch.from_numpy(np.random.default_rng(3).uniform(size=(2, 4, 5)))
    got = masked_l1(restored, clean, alpha if alpha_dims == 3 else alpha[:, None], hole_weight=6.0)
    r, c, a = restored.numpy(), clean.numpy(), alpha.numpy()
    total = 0.0
    for n, ch, y, x in itertools.product(range(2), range(3), range(4), range(5)):
        total += (1 + 5 * a[n, y, x]) * abs(r[n, ch, y, x] - c[n, ch, y, x])
    assert got.item() == pytest.approx(total / r.size, rel=1e-10)
    # no mask -> plain L1; full mask -> hole_weight x L1
    l1 = np.abs(r - c).mean()
    assert masked_l1(restored, clean, torch.zeros(2, 4, 5, dtype=torch.float64)).item() == pytest.approx(l1)
    assert masked_l1(restored, clean, torch.ones(2, 4, 5, dtype=torch.float64)).item() == pytest.approx(6 * l1)


def test_identity_loss_is_one_minus_cosine():
    a, b = rng_tensor(4, 8, seed=4), rng_tensor(4, 8, seed=5)
    want = np.mean([1 - np_unit(a[i].numpy()) @ np_unit(b[i].numpy()) for i in range(4)])
    assert identity_loss(a, b).item() == pytest.approx(want, rel=1e-10)
    assert identity_loss(a, 3 * a).item() == pytest.approx(0.0, abs=1e-12)
    assert identity_loss(a, -a).item() == pytest.approx(2.0)


def test_hinge_losses():
    real, fake = rng_tensor(2, 1, 3, 3, seed=6), rng_tensor(2, 1, 3, 3, seed=7)
    r, f = real.numpy().ravel(), fake.numpy().ravel()
    want_d = np.mean([max(0.0, 1 - v) for v in r]) + np.mean([max(0.0, 1 + v) for v in f])
    assert hinge_d_loss(real, fake).item() == pytest.approx(want_d, rel=1e-10)
    assert hinge_g_loss(fake).item() == pytest.approx(-f.mean(), rel=1e-10)
    # a discriminator sure of itself (real >= 1, fake <= -1) has zero loss
    assert hinge_d_loss(torch.full((3,), 2.0), torch.full((3,), -1.5)).item() == 0.0


# ---------------------------------------------------------------- relational distillation

def loop_first(s, t):
    return np.mean([1 - np_unit(s[i]) @ np_unit(t[i]) for i in range(len(s))])


def loop_second(s, t):
    s = [np_unit(v) for v in s]
    t = [np_unit(v) for v in t]
    pairs = [(i, j) for i in range(len(s)) for j in range(len(s)) if i != j]
    ds = {p: np.linalg.norm(s[p[0]] - s[p[1]]) for p in pairs}
    dt = {p: np.linalg.norm(t[p[0]] - t[p[1]]) for p in pairs}
    ms, mt = np.mean(list(ds.values())), np.mean(list(dt.values()))
    return np.mean([np_smooth_l1(ds[p] / ms, dt[p] / mt) for p in pairs])


def loop_third(s, t):
    s = [np_unit(v) for v in s]
    t = [np_unit(v) for v in t]
    vals = []
    for i, j, k in itertools.permutations(range(len(s)), 3):
        cs = np_unit(s[i] - s[j]) @ np_unit(s[k] - s[j])
        ct = np_unit(t[i] - t[j]) @ np_unit(t[k] - t[j])
        vals.append(np_smooth_l1(cs, ct))
    return np.mean(vals)


def test_relational_orders_match_loops():
    s, t = rng_tensor(6, 5, seed=8), rng_tensor(6, 5, seed=9)
    assert first_order(s, t).item() == pytest.approx(loop_first(s.numpy(), t.numpy()), rel=1e-9)
    assert second_order(s, t).item() == pytest.approx(loop_second(s.numpy(), t.numpy()), rel=1e-9)
    assert third_order(s, t).item() == pytest.approx(loop_third(s.numpy(), t.numpy()), rel=1e-9)


def test_relational_orders_with_different_widths_and_large_differences():
    # student 4-d, teacher 7-d: second and third order only compare relations
    s, t = 3 * rng_tensor(5, 4, seed=10), rng_tensor(5, 7, seed=11)
    assert second_order(s, t).item() == pytest.approx(loop_second(s.numpy(), t.numpy()), rel=1e-9)
    assert third_order(s, t).item() == pytest.approx(loop_third(s.numpy(), t.numpy()), rel=1e-9)
    with pytest.raises(ValueError, match="same shape"):
        first_order(s, t)


def test_relations_ignore_rotation_and_scale():
    t = rng_tensor(8, 6, seed=12)
    q, _ = np.linalg.qr(np.random.default_rng(13).normal(size=(6, 6)))
    s = 5.0 * t @ torch.from_numpy(q)
    assert second_order(s, t).item() == pytest.approx(0.0, abs=1e-12)
    assert third_order(s, t).item() == pytest.approx(0.0, abs=1e-12)
    assert first_order(s, t).item() > 0.01  # but the vectors themselves differ


def test_weighted_distillation_terms_and_gradients():
    s = rng_tensor(7, 5, seed=14).float().requires_grad_()
    t = rng_tensor(7, 5, seed=15).float().requires_grad_()
    total, terms = weighted_distillation(s, t, {"rd1": 1.0, "rd2": 2.0, "rd3": 0.5})
    assert set(terms) == {"rd1", "rd2", "rd3"}
    want = [loop_first(s.detach().numpy(), t.detach().numpy()), loop_second(s.detach().numpy(), t.detach().numpy()),
            loop_third(s.detach().numpy(), t.detach().numpy())]
    for key, value in zip(("rd1", "rd2", "rd3"), want):
        assert terms[key].item() == pytest.approx(value, rel=1e-4)
    assert total.item() == pytest.approx(want[0] + 2 * want[1] + 0.5 * want[2], rel=1e-4)
    total.backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None  # the teacher is a target
    _, skipped = weighted_distillation(s.detach(), t.detach(), {"rd1": 1.0, "rd2": 0.0, "rd3": 0.0})
    assert set(skipped) == {"rd1"}  # a term with weight 0 is not computed


def test_relational_small_batches_and_finite_gradients_with_duplicates():
    one = torch.randn(1, 4)
    assert second_order(one, one).item() == 0.0 and third_order(one, one).item() == 0.0
    s = torch.randn(4, 8)
    s = torch.cat([s, s[:1]]).requires_grad_()  # a duplicate: zero distance, no direction
    total, _ = weighted_distillation(s, torch.randn(5, 8), {"rd1": 1.0, "rd2": 1.0, "rd3": 1.0})
    total.backward()
    assert torch.isfinite(s.grad).all() and s.grad.abs().max() < 10


def test_third_order_float32_large_batch_matches_float64():
    s, t = torch.randn(160, 64), torch.randn(160, 64)
    value = third_order(s, t)
    assert value.item() == pytest.approx(third_order(s.double(), t.double()).item(), rel=1e-4)
    # and the float64 path equals the loops on a subset
    assert third_order(s[:7].double(), t[:7].double()).item() == pytest.approx(
        loop_third(s[:7].double().numpy(), t[:7].double().numpy()), rel=1e-9)


# ---------------------------------------------------------------- classification heads

def np_cross_entropy(logits, labels):
    out = []
    for row, y in zip(logits, labels):
        m = max(row)
        out.append(-(row[y] - m - math.log(sum(math.exp(v - m) for v in row))))
    return float(np.mean(out))


def test_softmax_head_is_linear_plus_cross_entropy():
    torch.manual_seed(0)
    head = SoftmaxHead(6, 4)
    emb, labels = torch.randn(5, 6, dtype=torch.float64), torch.tensor([0, 3, 1, 1, 2])
    head = head.double()
    loss, logits = head(emb, labels)
    w, b = head.fc.weight.detach().numpy(), head.fc.bias.detach().numpy()
    want = emb.numpy() @ w.T + b
    np.testing.assert_allclose(logits.detach().numpy(), want, rtol=1e-12)
    assert loss.item() == pytest.approx(np_cross_entropy(want, labels.tolist()), rel=1e-10)


def np_margin_logits(cos, labels, m, scale, threshold=0.0):
    """arcface_torch CombinedMarginLoss, written out element by element."""
    out = cos.copy()
    m1, m2, m3 = m
    for r, y in enumerate(labels):
        for c in range(out.shape[1]):
            if threshold > 0 and c != y and out[r, c] > threshold:
                out[r, c] = 0.0
        if y == -1:
            continue
        if m3 > 0:
            out[r, y] = out[r, y] - m3
        else:
            out[r, y] = math.cos(math.acos(out[r, y]) + m2)
    return out * scale


@pytest.mark.parametrize("margins", [(1.0, 0.5, 0.0), (1.0, 0.0, 0.4), (1.0, 0.0, 0.0)])
@pytest.mark.parametrize("threshold", [0.0, 0.3])
def test_margin_logits_match_arcface_torch_rule(margins, threshold):
    cos = np.random.default_rng(16).uniform(-1, 1, size=(6, 5))
    labels = [0, 4, 2, -1, 2, 1]
    got = margin_logits(torch.from_numpy(cos), torch.tensor(labels), margins, 64.0, threshold)
    np.testing.assert_allclose(got.numpy(), np_margin_logits(cos, labels, margins, 64.0, threshold), atol=1e-9)


def test_combined_margin_list_behaves_like_arcface_torch():
    # arcface_torch applies only m3 when m3 > 0: (1, 0.3, 0.2) is CosFace 0.2
    cos = torch.from_numpy(np.random.default_rng(17).uniform(-1, 1, size=(3, 4)))
    labels = torch.tensor([1, 0, 3])
    np.testing.assert_allclose(margin_logits(cos, labels, (1.0, 0.3, 0.2), 30.0).numpy(),
                               margin_logits(cos, labels, (1.0, 0.0, 0.2), 30.0).numpy())
    with pytest.warns(UserWarning, match="ignored"):
        MarginHead(4, 3, margin_list=(1.0, 0.3, 0.2))
    with pytest.raises(ConfigError, match="ArcFace"):
        MarginHead(4, 3, margin_list=(0.9, 0.4, 0.0))


def test_margin_head_loss_and_straight_through_gradient():
    torch.manual_seed(1)
    head = MarginHead(8, 5, margin_list=(1.0, 0.5, 0.0), scale=16.0).double()
    emb = torch.randn(4, 8, dtype=torch.float64)
    labels = torch.tensor([0, 4, 4, 2])
    loss, logits = head(emb, labels)
    e = emb.numpy() / np.linalg.norm(emb.numpy(), axis=1, keepdims=True)
    w = head.weight.detach().numpy()
    w = w / np.linalg.norm(w, axis=1, keepdims=True)
    cos = e @ w.T
    np.testing.assert_allclose(logits.numpy(), 16.0 * cos, rtol=1e-10)  # returned logits: no margin
    margin = np_margin_logits(cos, labels.tolist(), (1.0, 0.5, 0.0), 16.0)
    assert loss.item() == pytest.approx(np_cross_entropy(margin, labels.tolist()), rel=1e-10)
    # arcface_torch's margin carries no gradient: dL/dcos = scale * (softmax(margin logits) - onehot) / N
    cos_t = torch.from_numpy(cos).requires_grad_()
    out = margin_logits(cos_t, labels, (1.0, 0.5, 0.0), 16.0)
    torch.nn.functional.cross_entropy(out, labels).backward()
    p = np.exp(margin - margin.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(4), labels.numpy()] -= 1
    np.testing.assert_allclose(cos_t.grad.numpy(), 16.0 * p / 4, rtol=1e-8, atol=1e-12)


def test_margin_head_trains_cosface():
    torch.manual_seed(2)
    head = build_head("margin", num_features=4, num_classes=3, margin_list=(1.0, 0.0, 0.4), scale=8.0)
    emb = torch.eye(3, 4) + 0.1 * torch.randn(3, 4)
    labels = torch.arange(3)
    first = head(emb, labels)[0].item()
    for _ in range(30):
        loss, logits = head(emb, labels)
        (grad,) = torch.autograd.grad(loss, head.weight)
        with torch.no_grad():
            head.weight -= 0.5 * grad
    assert loss.item() < first / 2
    assert (logits.argmax(1) == labels).all()


def test_heads_reject_bad_labels_and_kinds():
    with pytest.raises(DataError, match="num_classes"):
        SoftmaxHead(4, 3)(torch.randn(2, 4), torch.tensor([0, 3]))
    with pytest.raises(DataError, match="num_classes"):
        MarginHead(4, 3)(torch.randn(2, 4), torch.tensor([0, 5]))
    with pytest.raises(ConfigError, match="unknown head"):
        build_head("triplet", num_features=4, num_classes=3)
    with pytest.raises(ConfigError, match="num_classes"):
        build_head("softmax", num_features=4)
    assert isinstance(build_head("softmax", num_features=4, num_classes=3), SoftmaxHead)
    assert build_head("cosface", num_features=4, num_classes=3).margin_list == (1.0, 0.0, 0.4)


# ---------------------------------------------------------------- finite guard

def test_check_finite_names_bad_terms():
    check_finite({"a": torch.tensor(1.0), "b": 2.0, "c": torch.ones(3)})
    with pytest.raises(TrainingError) as err:
        check_finite({"ok": torch.tensor(0.5), "rd2": torch.tensor(float("nan")), "adv": float("inf"),
                      "vec": torch.tensor([1.0, float("-inf")])}, step=7)
    msg = str(err.value)
    assert "rd2=nan" in msg and "adv=inf" in msg and "vec" in msg and "step 7" in msg
    assert "ok" not in msg.split(":")[1]


# ---------------------------------------------------------------- the distillation-loss registry


@pytest.mark.parametrize("name", sorted(DISTILLATION_LOSSES))
def test_every_registered_distillation_loss_keeps_the_contract(name):
    """What a reform stage relies on for every term: a finite scalar >= 0 that is 0 when the student
    reproduces the teacher, gradients that reach the student only, and float32 math under autocast."""
    loss = DISTILLATION_LOSSES[name]
    assert callable(loss.fn) and loss.weight >= 0
    teacher = rng_tensor(12, 16, seed=1).float().requires_grad_()
    student = rng_tensor(12, 16, seed=2).float().requires_grad_()
    value = loss.fn(student, teacher)
    assert value.dim() == 0 and torch.isfinite(value) and float(value.detach()) > 1e-3
    value.backward()
    assert student.grad is not None and torch.isfinite(student.grad).all() and student.grad.abs().sum() > 0
    assert teacher.grad is None  # the teacher side is a target
    same = loss.fn(teacher.detach().clone(), teacher.detach())
    assert float(same) == pytest.approx(0.0, abs=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = loss.fn(student.detach(), teacher.detach())
    assert low.dtype == torch.float32
    assert float(low) == pytest.approx(float(loss.fn(student.detach(), teacher.detach())), rel=1e-6, abs=1e-7)


def test_distillation_terms_computes_exactly_the_weighted_terms():
    student, teacher = rng_tensor(8, 16, seed=3).float(), rng_tensor(8, 16, seed=4).float()
    names = sorted(DISTILLATION_LOSSES)
    weights = {names[0]: 1.0, **{n: 0.0 for n in names[1:]}}
    terms = distillation_terms(student, teacher, weights)
    assert list(terms) == [names[0]]
    assert float(terms[names[0]]) == pytest.approx(float(DISTILLATION_LOSSES[names[0]].fn(student, teacher)))
