"""data.grids: the grid composer shared by training previews and `g2d-mask preview`."""
import cv2
import numpy as np
import torch

from insightface_g2d.data.grids import compose_grid, label_grid


def _images(n, h, w, seed):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def test_compose_grid_places_every_image_with_white_between():
    a, b = _images(3, 5, 4, 0), _images(2, 5, 4, 1)
    grid = compose_grid([a, b], pad=2)
    assert grid.shape == (5 + 2 + 5, 3 * 4 + 2 * 2, 3) and grid.dtype == np.uint8
    for i in range(3):
        np.testing.assert_array_equal(grid[:5, i * 6:i * 6 + 4], a[i])
    for i in range(2):
        np.testing.assert_array_equal(grid[7:, i * 6:i * 6 + 4], b[i])
    mask = np.ones(grid.shape[:2], bool)  # everything not covered by an image is white
    for r, row in ((0, a), (7, b)):
        for i in range(len(row)):
            mask[r:r + 5, i * 6:i * 6 + 4] = False
    assert (grid[mask] == 255).all()
    # no padding: plain concatenation
    np.testing.assert_array_equal(compose_grid([a, a]), np.concatenate([np.concatenate(list(a), 1)] * 2))


def test_compose_grid_resizes_to_the_cell():
    a = _images(2, 8, 8, 2)
    grid = compose_grid([a], cell=4)
    np.testing.assert_array_equal(grid[:, 4:], cv2.resize(a[1], (4, 4), interpolation=cv2.INTER_AREA))
    np.testing.assert_array_equal(compose_grid([a], cell=8), compose_grid([a]))  # already that size


def test_label_grid_adds_a_column_and_a_header():
    grid = compose_grid([_images(3, 20, 20, 3)] * 2)
    labelled = label_grid(grid, ["clean", "n95/chin"], 20)
    assert labelled.shape == (40, 60 + 60, 3)
    np.testing.assert_array_equal(labelled[:, 60:], grid)
    assert (labelled[:, :60] < 255).any()  # the names were drawn
    headed = label_grid(grid, ["clean", "n95"], 20, column_names=["a", "b", "c"])
    assert headed.shape == (14 + 40, 120, 3)
    np.testing.assert_array_equal(headed[14:, 60:], grid)


def test_training_preview_grid_is_the_shared_composer():
    from insightface_g2d.data.transforms import to_image
    from insightface_g2d.training.preview import face_grid

    g = torch.Generator().manual_seed(0)
    rows = [torch.rand(4, 3, 6, 6, generator=g) * 2 - 1, torch.rand(2, 3, 6, 6, generator=g) * 2 - 1]
    grid = face_grid(rows)
    assert grid.shape == (6 + 2 + 6, 4 * 8 - 2, 3)
    np.testing.assert_array_equal(grid[8:, 8:14], to_image(rows[1])[1])
    assert (grid[8:, 14:] == 255).all()  # the short row is filled with white
