"""Conversions between uint8 RGB faces and the [-1, 1] tensors backbones take (numpy here; torch only
where a tensor is asked for, so runtimes without PyTorch share the same arithmetic)."""
import numpy as np


def pm1_array(img):
    """uint8 [H, W, 3] or [N, H, W, 3] RGB -> float32 numpy [3, H, W] or [N, 3, H, W] in [-1, 1]."""
    arr = np.ascontiguousarray(img)
    if arr.dtype != np.uint8:
        raise TypeError(f"expected uint8 image, got {arr.dtype}")
    # numpy rather than torch ops: a single face is just big enough for torch to spread the
    # conversion over threads, which costs more than it saves in the main process.
    chw = arr.transpose(2, 0, 1) if arr.ndim == 3 else arr.transpose(0, 3, 1, 2)
    out = np.empty(chw.shape, dtype=np.float32)
    np.multiply(chw, np.float32(1 / 127.5), out=out, casting="unsafe")
    out -= np.float32(1.0)
    return out


def to_tensor(img):
    """uint8 [H, W, 3] or [N, H, W, 3] RGB -> float32 tensor [3, H, W] or [N, 3, H, W] in [-1, 1]."""
    import torch

    return torch.from_numpy(pm1_array(img))


def to_image(tensor):
    """float [3, H, W] or [N, 3, H, W] in [-1, 1] -> uint8 [H, W, 3] or [N, H, W, 3] RGB (rounded, clipped)."""
    import torch

    t = tensor.detach().float().cpu()
    t = t.permute(1, 2, 0) if t.dim() == 3 else t.permute(0, 2, 3, 1)
    return ((t + 1.0) * 127.5).round().clamp_(0, 255).to(torch.uint8).numpy()


def hflip(img):
    """Mirror a uint8 [H, W, C] image (or [H, W] map) left-right."""
    return np.ascontiguousarray(img[:, ::-1])
