"""Grids of faces as one uint8 RGB image: training previews and `g2d-mask preview` build theirs here.

    compose_grid(rows, pad, cell)          rows of images -> one image, white between and after
    label_grid(grid, row_names, cell, ...)  a label column on the left, optionally a header row
"""
import cv2
import numpy as np

WHITE = 255


def compose_grid(rows, pad=0, cell=None):
    """rows: sequences of uint8 H x W x 3 images (a list, or an N x H x W x 3 array) -> one uint8
    image: each row's images side by side, rows stacked, `pad` white pixels between images and
    between rows; a row shorter than the widest is filled with white on the right.
    cell: resize every image that is not cell x cell to it (INTER_AREA) first."""
    strips = []
    for row in rows:
        if cell:
            row = [img if img.shape[:2] == (cell, cell) else
                   cv2.resize(img, (cell, cell), interpolation=cv2.INTER_AREA) for img in row]
        n = len(row)
        h, w = row[0].shape[:2]
        strip = np.full((h, n * (w + pad) - pad, 3), WHITE, np.uint8)
        for i, img in enumerate(row):
            strip[:, i * (w + pad):i * (w + pad) + w] = img
        strips.append(strip)
    width = max(s.shape[1] for s in strips)
    out = []
    for i, s in enumerate(strips):
        if s.shape[1] < width:
            s = np.pad(s, ((0, 0), (0, width - s.shape[1]), (0, 0)), constant_values=WHITE)
        out.append(s)
        if pad and i < len(strips) - 1:
            out.append(np.full((pad, width, 3), WHITE, np.uint8))
    return np.concatenate(out)


def _text_scale(cell):
    return max(0.3, cell / 112.0 * 0.42)


def label_column(names, cell, width):
    """A white column `width` wide with one name per `cell`-high row ('/' starts a new line)."""
    col = np.full((len(names) * cell, width, 3), WHITE, np.uint8)
    scale = _text_scale(cell)
    for i, name in enumerate(names):
        for j, line in enumerate(name.split("/")):
            y = i * cell + cell // 2 - 4 + int(j * 16 * scale / 0.42)
            cv2.putText(col, line, (4, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return col


def header_row(names, cell, offset):
    """A white row with one name per `cell`-wide column, the first column `offset` pixels in."""
    row = np.full((max(14, cell // 6), offset + cell * len(names), 3), WHITE, np.uint8)
    scale = _text_scale(cell)
    for j, name in enumerate(names):
        cv2.putText(row, name, (offset + j * cell + 4, row.shape[0] - 4), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (0, 0, 0), 1, cv2.LINE_AA)
    return row


def label_grid(grid, row_names, cell, column_names=None):
    """A grid of cell x cell images with its rows named in a column on the left and, given
    `column_names`, its columns named in a row above."""
    label_width = max(60, int(cell * 0.75))
    grid = np.concatenate([label_column(row_names, cell, label_width), grid], axis=1)
    if column_names is not None:
        grid = np.concatenate([header_row(column_names, cell, label_width), grid], axis=0)
    return grid
