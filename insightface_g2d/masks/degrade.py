"""What real masked photos do to a face crop that synthetic masks on clean crops do not: the crop is
placed by a front end that cannot see the lower face (alignment off by a few pixels, a few degrees,
a few per cent of scale), and the photo came from the web (small and upscaled, blurred, JPEG-ed,
other light and colour). `Degradation` draws those on the student's input face only; the clean face
(the teacher's input, and the key of its cache) is left as it is.

Every draw comes from the generator handed in, so an item degrades the same way whichever worker or
rank draws it (MaskedPairDataset hands each item its own stream).
"""
from dataclasses import asdict, dataclass, fields

import cv2
import numpy as np

from ..errors import ConfigError, suggest


@dataclass(frozen=True)
class Degradation:
    """prob: share of faces degraded at all; then each effect with its own probability:
    placement (shift: max shift as a share of the crop side; turn: max degrees; scale: max relative
    change), downscale (smallest side as a share, then back up), blur (max Gaussian sigma in px),
    jpeg (lowest quality), color (max relative change of brightness, contrast and saturation),
    frame (the photo ends near the face, as in sets of tight face crops: everything outside a square
    of side `frame`..0.95 of the crop, turned up to 10 degrees and shifted up to 4 %, is black, as an
    aligned crop of such a photo is)."""

    prob: float = 0.8
    shift: float = 0.03
    turn: float = 6.0
    scale: float = 0.05
    p_place: float = 0.7
    downscale: float = 0.35
    p_downscale: float = 0.4
    blur: float = 1.2
    p_blur: float = 0.3
    jpeg: int = 30
    p_jpeg: float = 0.4
    color: float = 0.2
    p_color: float = 0.5
    frame: float = 0.6
    p_frame: float = 0.0

    @classmethod
    def from_config(cls, value, where="config.masks.degrade"):
        """None/False -> None; True -> the defaults; a dict -> the defaults with its keys replaced."""
        if value is None or value is False:
            return None
        if value is True:
            return cls()
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be True, False/None or a dict of {', '.join(f.name for f in fields(cls))}; "
                              f"got {value!r}")
        known = {f.name for f in fields(cls)}
        for key, v in value.items():
            if key not in known:
                raise ConfigError(f"{where}: unknown key {key!r}{suggest(key, known)}; keys: {', '.join(sorted(known))}")
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v < 0:
                raise ConfigError(f"{where}.{key} must be a number >= 0, got {v!r}")
        d = cls(**value)
        for key in ("prob", "p_place", "p_downscale", "p_blur", "p_jpeg", "p_color", "p_frame", "downscale", "frame"):
            if getattr(d, key) > 1:
                raise ConfigError(f"{where}.{key} must be at most 1, got {getattr(d, key)}")
        if not 1 <= d.jpeg <= 100:
            raise ConfigError(f"{where}.jpeg is the lowest JPEG quality, 1..100; got {d.jpeg}")
        if d.scale >= 0.5 or d.shift >= 0.5:
            raise ConfigError(f"{where}: shift and scale must be below 0.5 (a share of the crop)")
        return d

    def as_dict(self):
        return asdict(self)

    def apply(self, face, rng, alpha=None):
        """(degraded uint8 [S, S, 3], alpha moved with the face or None). Always draws the same number
        of values from rng, whatever is applied, so streams never shift."""
        u = rng.random(20)
        face = np.ascontiguousarray(face)
        if u[0] >= self.prob:
            return face, alpha
        s = face.shape[0]
        if u[1] < self.p_place:
            angle = (2 * u[2] - 1) * self.turn
            zoom = 1 + (2 * u[3] - 1) * self.scale
            matrix = cv2.getRotationMatrix2D((s / 2, s / 2), angle, zoom)
            matrix[:, 2] += (2 * u[4:6] - 1) * self.shift * s
            face = cv2.warpAffine(face, matrix, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            if alpha is not None:
                alpha = cv2.warpAffine(np.ascontiguousarray(alpha, np.float32), matrix, (s, s), flags=cv2.INTER_LINEAR,
                                       borderMode=cv2.BORDER_CONSTANT)
        if u[6] < self.p_downscale:
            side = max(8, int(round(s * (self.downscale + (1 - self.downscale) * u[7]))))
            small = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)
            face = cv2.resize(small, (s, s), interpolation=cv2.INTER_LINEAR)
        if u[8] < self.p_blur and self.blur > 0:
            face = cv2.GaussianBlur(face, (0, 0), sigmaX=max(0.1, self.blur * u[9]))
        if u[10] < self.p_color and self.color > 0:
            f = face.astype(np.float32)
            gray = f.mean(axis=2, keepdims=True)
            f = gray + (f - gray) * (1 + (2 * u[11] - 1) * self.color)          # saturation
            f = f.mean() + (f - f.mean()) * (1 + (2 * u[12] - 1) * self.color)  # contrast
            f = f * (1 + (2 * u[13] - 1) * self.color)                          # brightness
            face = np.clip(f + 0.5, 0, 255).astype(np.uint8)
        if u[16] < self.p_frame:
            side = s * (self.frame + (0.95 - self.frame) * u[17]) if self.frame < 0.95 else s * self.frame
            box = cv2.boxPoints(((s / 2 + (2 * u[18] - 1) * 0.04 * s, s / 2 + (2 * u[19] - 1) * 0.04 * s),
                                 (side, side), (2 * u[17] - 1) * 10.0))
            keep = np.zeros((s, s), np.uint8)
            cv2.fillConvexPoly(keep, np.round(box).astype(np.int32), 1)
            face = face * keep[:, :, None]
            if alpha is not None:
                alpha = alpha * keep
        if u[14] < self.p_jpeg:
            quality = int(round(self.jpeg + (95 - self.jpeg) * u[15])) if self.jpeg < 95 else self.jpeg
            ok, data = cv2.imencode(".jpg", np.ascontiguousarray(face[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
            if ok:
                face = cv2.imdecode(data, cv2.IMREAD_COLOR)[:, :, ::-1]
        return np.ascontiguousarray(face), alpha
