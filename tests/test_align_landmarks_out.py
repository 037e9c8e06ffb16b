"""`g2d-data align` writes the five points it found (out/landmarks5.tsv, the landmarks5 format) so
that `g2d-mask apply --landmarks` masks the user's own photos; it leaves the process's thread
counts as they were."""
import shutil

import numpy as np
import pytest
import torch

pytest.importorskip("dlib")


def test_align_writes_found_points_that_g2d_mask_apply_reads(lfw_root, tmp_path, capsys):
    from insightface_g2d.cli.common import run_cli
    from insightface_g2d.cli.mask import main as mask_main
    from insightface_g2d.data.align import align_face, read_landmarks_tsv
    from insightface_g2d.data.image_io import read_image_file, read_photo
    from insightface_g2d.faces.align_folder import align_folder

    src = tmp_path / "photos"
    for person in ("Colin_Powell", "Tony_Blair"):
        (src / person).mkdir(parents=True)
        for n in (1, 2):
            shutil.copy(lfw_root / "lfw-deepfunneled" / person / f"{person}_{n:04d}.jpg", src / person)
    (src / "Tony_Blair" / "blank.png").write_bytes(_blank_png())
    threads = torch.get_num_threads()
    summary = align_folder(src, tmp_path / "faces", fmt="png", progress=False)
    assert torch.get_num_threads() == threads
    assert summary["aligned"] == 4 and summary["no_face"] == 1
    found = read_landmarks_tsv(summary["landmarks"])
    assert sorted(found) == sorted(f"{p}/{p}_{n:04d}.jpg" for p in ("Colin_Powell", "Tony_Blair") for n in (1, 2))
    for rel, lmk in found.items():  # the written face is the photo aligned with the written points
        face = read_image_file(tmp_path / "faces" / rel.replace(".jpg", ".png"))
        again = align_face(read_photo(src / rel), lmk)
        np.testing.assert_array_equal(face, again)

    (src / "Tony_Blair" / "blank.png").unlink()  # g2d-mask apply needs points for every photo it is given
    assert run_cli(mask_main, ["apply", "--input", str(src), "--landmarks", summary["landmarks"], "--out",
                               str(tmp_path / "masked"), "--quiet"]) == 0
    assert "masked 4 images" in capsys.readouterr().out
    rel = "Colin_Powell/Colin_Powell_0001.jpg"
    assert (read_photo(tmp_path / "masked" / rel).astype(int) - read_photo(src / rel)).any()

    again = align_folder(src, tmp_path / "faces", fmt="png", progress=False)  # a re-run keeps the points
    assert again["done_before"] == 4 and sorted(read_landmarks_tsv(again["landmarks"])) == sorted(found)


def _blank_png():
    import cv2

    return cv2.imencode(".png", np.full((120, 120, 3), 90, np.uint8))[1].tobytes()
