"""FaceEmbedder: faces in, identity vectors out; the interface teachers and evaluation share.

Faces are float32 tensors N x 3 x 112 x 112, RGB aligned crops in [-1, 1] (`data.transforms.to_tensor`).
`embed(faces)` returns N x dim float32 on the faces' device; with `flip=True` it returns the sum of
the face's and its mirror image's embeddings (arcface_torch's verification protocol), both run as
one batch of 2N. `embed_images` does the same for uint8 images, batch by batch, as numpy.

A type also describes its spec, on the class (see registry.py and factory.py):
    options        keys its spec may carry besides the type key
    string_form    how it is written as a string, for messages
    parse_string   a string -> its spec dict, or None when the string is not this type
    spellings      the words its strings start with (the did-you-mean of a string no type takes)
    check_files    fail early (before a training run starts) when a file it needs is missing
    from_spec      build it from (value of the type key, options, factory.BuildContext)
"""
import numpy as np
import torch
from tqdm import tqdm

FACE_SHAPE = (3, 112, 112)


def key_value_string(key, text):
    """"KEY" -> {KEY: True}, "KEY:VALUE" -> {KEY: VALUE}, anything else -> None."""
    if text == key:
        return {key: True}
    if text.startswith(key + ":") and len(text) > len(key) + 1:
        return {key: text[len(key) + 1:]}
    return None


class FaceEmbedder:
    """Subclasses implement `forward` (and set name, device, and dim when they know it)."""

    options = ()
    string_form = ""
    differentiable = False  # True: gradients flow through embed() to the faces
    fixed_batch = None      # a model that only takes batches of this size (ONNX exports)

    def __init__(self, name=None, device="cpu", dim=None, differentiable=False):
        self.name = name or type(self).__name__
        self.device = torch.device(device)
        self._dim = None if dim is None else int(dim)
        self.differentiable = bool(differentiable)

    # ------------------------------------------------------------------ spec (class side)

    @classmethod
    def parse_string(cls, key, text):
        """A string -> this type's spec dict, or None; by default `key_value_string`."""
        return key_value_string(key, text)

    @classmethod
    def spellings(cls, key):
        """Words a string spec of this type starts with (before any ':'); by default its key."""
        return (key,)

    @classmethod
    def check_files(cls, value, options, where):
        """Raise when something the spec names is missing; the default checks nothing."""

    @classmethod
    def from_spec(cls, value, options, ctx):
        raise NotImplementedError

    # ------------------------------------------------------------------ embedding

    def forward(self, faces):
        """N x 3 x 112 x 112 float tensor in [-1, 1] -> N x dim tensor (on any device)."""
        raise NotImplementedError

    @property
    def dim(self):
        """The embedding size (run once on a blank face when the type cannot tell otherwise)."""
        if self._dim is None:
            with torch.no_grad():
                self._dim = int(self.forward(torch.zeros(1, *FACE_SHAPE, device=self.device)).shape[1])
        return self._dim

    def embed(self, faces, flip=False):
        """N x dim float32 on the faces' device; flip=True adds the mirror image's embedding."""
        if flip:
            n = len(faces)
            both = self.embed(torch.cat([faces, faces.flip(3)]))
            return both[:n] + both[n:]
        return self.forward(faces).float().to(faces.device)

    def __call__(self, faces, flip=False):
        return self.embed(faces, flip)

    def embed_images(self, images, batch_size=64, flip=True, progress=True, desc="embedding"):
        """uint8 [N, H, W, 3] RGB faces -> float32 [N, dim] numpy (face + mirror image with flip).

        Conversion to [-1, 1] tensors happens one batch at a time, so memory stays at the uint8
        images plus one float batch.
        """
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"expected uint8 [N, H, W, 3] images, got shape {images.shape}")
        n = len(images)
        out = None
        bar = tqdm(total=n, desc=desc, unit="img", disable=not progress, leave=False)
        for start in range(0, n, batch_size):
            part = images[start:start + batch_size]
            with torch.no_grad():
                emb = self.embed_uint8(part, flip).numpy()
            if out is None:
                out = np.empty((n, emb.shape[1]), dtype=np.float32)
            out[start:start + len(part)] = emb
            bar.update(len(part))
        bar.close()
        if out is None:
            raise ValueError("no images to embed")
        return out

    def embed_uint8(self, images, flip=False):
        """One batch of uint8 [N, H, W, 3] RGB faces -> N x dim float32 tensor (CPU)."""
        from ..data.transforms import to_tensor

        return self.embed(to_tensor(images), flip=flip).cpu()

    def to(self, device):
        self.device = torch.device(device)
        return self

    def __repr__(self):
        return f"{type(self).__name__}({self.name!r}, dim={self._dim if self._dim is not None else '?'}, " \
               f"device={self.device})"
