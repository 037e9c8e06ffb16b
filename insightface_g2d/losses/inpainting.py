"""Losses of face inpainting: restoration, identity preservation, adversarial hinge."""
import torch.nn.functional as F


def masked_l1(restored, clean, alpha, hole_weight=6.0):
    """L1 restoration loss with the masked region weighted more.

    restored, clean: N x 3 x H x W; alpha: N x 1 x H x W or N x H x W mask coverage in [0, 1].
    Each pixel's |restored - clean| is weighted w = 1 + (hole_weight - 1) * alpha, i.e. 1 outside the
    mask and `hole_weight` inside (the valid + 6 * hole weighting of partial-convolution inpainting),
    and the loss is the mean over all N * 3 * H * W elements. Returns a scalar.
    """
    if alpha.dim() == restored.dim() - 1:
        alpha = alpha.unsqueeze(1)
    weight = 1.0 + (hole_weight - 1.0) * alpha.to(restored.dtype)
    return (weight * (restored - clean).abs()).mean()


def identity_loss(emb_restored, emb_clean):
    """Mean of 1 - cos(emb_restored_i, emb_clean_i); N x D, N x D -> scalar in [0, 2]."""
    return (1.0 - F.cosine_similarity(emb_restored, emb_clean, dim=1, eps=1e-8)).mean()


def hinge_d_loss(real_logits, fake_logits):
    """Discriminator hinge loss: mean(relu(1 - real)) + mean(relu(1 + fake)); any shapes -> scalar."""
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


def hinge_g_loss(fake_logits):
    """Generator hinge loss: -mean(fake); any shape -> scalar."""
    return -fake_logits.mean()
