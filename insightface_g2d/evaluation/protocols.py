"""Masked-face evaluation protocols: which faces of a verification set get a synthetic mask.

  clean          no face is masked (the set as it is)
  masked-masked  both faces of every pair are masked, each with a random style and position
  masked-clean   exactly one face of every pair is masked: the first face of even-numbered pairs
                 and the second face of odd-numbered pairs (pair index i, images 2i and 2i+1), so
                 both positions and both matched and mismatched pairs are covered equally
  style:<name>   masked-masked with one mask style only (e.g. style:n95; see MASK_STYLES)
  masked-masked:<style>[+<style>...], masked-clean:<style>[+<style>...]
                 the same protocols with masks drawn from the listed styles only, e.g.
                 masked-clean:n95+textured for styles held out from training

Randomness: image i of the set gets its own generator np.random.default_rng([seed, i]), so the
result depends only on (seed, image index, image) -- not on batch order or threads -- and a
given seed reproduces identical bytes.
"""
import os

import numpy as np
from tqdm import tqdm

from ..errors import ConfigError, DataError

PROTOCOLS = ("clean", "masked-masked", "masked-clean")


def _mask_styles():
    from ..masks.styles import MASK_STYLES

    return tuple(MASK_STYLES)


def _parse_styles(text, protocol):
    styles = tuple(text.split("+"))
    known = _mask_styles()
    for style in styles:
        if style not in known:
            raise ConfigError(f"unknown mask style {style!r} in protocol {protocol!r}; styles: {', '.join(known)}")
    return styles[0] if len(styles) == 1 else styles


def parse_protocol(protocol):
    """'masked-masked' -> ('masked-masked', None); 'style:n95' -> ('masked-masked', 'n95');
    'masked-clean:n95+textured' -> ('masked-clean', ('n95', 'textured'))."""
    if protocol in PROTOCOLS:
        return protocol, None
    if isinstance(protocol, str) and protocol.partition(":")[0] in PROTOCOLS[1:] and protocol.partition(":")[2]:
        kind, _, styles = protocol.partition(":")
        return kind, _parse_styles(styles, protocol)
    if isinstance(protocol, str) and protocol.startswith("style:"):
        style = protocol[len("style:"):]
        styles = _mask_styles()
        if style not in styles:
            raise ConfigError(f"unknown mask style {style!r} in protocol {protocol!r}; styles: {', '.join(styles)}")
        return "masked-masked", style
    raise ConfigError(
        f"unknown protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}, style:<name> "
        "(e.g. style:surgical) or masked-clean:<style>[+<style>] (e.g. masked-clean:n95+textured)"
    )


def protocol_plan(num_images, protocol):
    """(bool [num_images]: which images the protocol masks, style or None)."""
    kind, style = parse_protocol(protocol)
    if num_images % 2:
        raise DataError(f"a verification set has 2 images per pair, got {num_images} images")
    if kind == "clean":
        masked = np.zeros(num_images, dtype=bool)
    elif kind == "masked-masked":
        masked = np.ones(num_images, dtype=bool)
    else:  # masked-clean: pair i masks image 2i + (i % 2)
        masked = np.zeros(num_images, dtype=bool)
        pairs = np.arange(num_images // 2)
        masked[2 * pairs + pairs % 2] = True
    return masked, style


def _synthesizer(synthesizer, style=None):
    """The given synthesizer, else one drawing from the default styles, or (a style named) one that
    knows every registered style: a named style's masks are the same bytes in either."""
    if synthesizer is not None:
        return synthesizer
    from ..masks.styles import MASK_STYLES
    from ..masks.synthesizer import MaskSynthesizer

    return MaskSynthesizer() if style is None else MaskSynthesizer(styles=tuple(MASK_STYLES))


def mask_images(images, image_ids, seed=0, style=None, synthesizer=None, progress=False):
    """Masked copies of uint8 [K, H, W, 3] faces; images[k] is image image_ids[k] of the set and
    is masked with np.random.default_rng([seed, image_ids[k]]). style: None (any), a name, or a
    tuple of names to draw from."""
    if isinstance(style, tuple):
        if synthesizer is not None:
            raise ConfigError(f"mask styles {'+'.join(style)} make their own synthesizer; pass either a synthesizer "
                              "or a tuple of styles, not both")
        from ..masks.synthesizer import MaskSynthesizer

        synthesizer, style = MaskSynthesizer(styles=style), None
    synth = _synthesizer(synthesizer, style)
    out = np.empty_like(images)
    for k, i in enumerate(tqdm(image_ids, desc="masking", unit="img", disable=not progress, leave=False)):
        rng = np.random.default_rng([int(seed), int(i)])
        out[k], _ = synth.apply(images[k], rng, style=style)
    return out


def apply_protocol(images, issame, protocol, seed=0, synthesizer=None, progress=False, masked_only=False):
    """Faces of a verification set as `protocol` shows them.

    images uint8 [2N, H, W, 3] aligned RGB (pair i = 2i, 2i+1), issame [N] (only checked).
    Returns a new uint8 array; the input is never modified. masked_only: return only what the
    protocol changes, (indices int [K], masked faces uint8 [K, H, W, 3]), or None when it masks
    nothing -- no copy of the whole set.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise DataError(f"expected uint8 [2N, H, W, 3] faces, got {images.dtype} {images.shape}")
    if len(images) != 2 * len(np.asarray(issame).reshape(-1)):
        raise DataError(f"{len(images)} images for {len(issame)} pairs; need 2 images per pair")
    masked, style = protocol_plan(len(images), protocol)
    idx = np.nonzero(masked)[0]
    faces = mask_images(images[idx], idx, seed, style, synthesizer, progress) if len(idx) else None
    if masked_only:
        return None if faces is None else (idx, faces)
    out = images.copy()
    if faces is not None:
        out[idx] = faces
    return out


def write_masked_bin(src_bin, dst_bin, protocol, seed=0, quality=95, synthesizer=None, progress=True):
    """Write `src_bin` as `protocol` shows it to `dst_bin` (a `.bin` any insightface tool reads).

    Unmasked images keep their original encoded bytes (no JPEG re-compression); masked ones are
    JPEG-encoded at `quality`. Returns dict(num_pairs, num_masked, protocol, seed).
    """
    from .binfile import decode_images, encode_image, read_bin_records, write_bin_records

    if os.path.abspath(os.fspath(src_bin)) == os.path.abspath(os.fspath(dst_bin)):
        raise DataError(f"{dst_bin}: refusing to overwrite the source .bin; choose another --out")
    bins, issame = read_bin_records(src_bin)
    masked, style = protocol_plan(len(bins), protocol)
    idx = np.nonzero(masked)[0]
    if len(idx):
        faces = decode_images([bins[i] for i in idx], 112, path=os.fspath(src_bin), indices=idx)
        masked_faces = mask_images(faces, idx, seed, style, synthesizer, progress)
        bins = list(bins)
        for k, i in enumerate(idx):
            bins[i] = encode_image(masked_faces[k], quality)
    write_bin_records(dst_bin, bins, issame)
    return dict(num_pairs=len(issame), num_masked=int(len(idx)), protocol=protocol, seed=int(seed))
