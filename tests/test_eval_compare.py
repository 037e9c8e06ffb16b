"""`g2d-eval compare`: tables, JSON and ROC PNG for two tiny models on a tiny .bin, checked against an
independent embedding + metrics computation."""
import json
import re
import struct

import numpy as np
import pytest
import torch

import insightface_g2d
from insightface_g2d.cli.common import run_cli
from insightface_g2d.cli.evaluate import main
from insightface_g2d.data.synthetic import SyntheticFaces
from insightface_g2d.data.transforms import to_tensor
from insightface_g2d.errors import ConfigError, DataError
from insightface_g2d.evaluation.binfile import load_bin, write_bin
from insightface_g2d.evaluation.report import fmt_percent

PROTOCOLS = ["clean", "masked-masked"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _pairs_from_faces(n_pairs=12, seed=0):
    """2N aligned synthetic faces: pairs 0..N/2-1 same person, the rest different people."""
    ds = SyntheticFaces(num_identities=n_pairs, images_per_identity=2, seed=seed)
    imgs, issame = [], []
    for p in range(n_pairs):
        same = p < n_pairs // 2
        a = ds[2 * p][0]
        b = ds[2 * p + 1][0] if same else ds[2 * ((p + 1) % n_pairs) + 1][0]
        imgs += [a, b]
        issame.append(same)
    return np.stack(imgs), np.array(issame)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("compare")
    images, issame = _pairs_from_faces()
    write_bin(d / "tiny.bin", images, issame)
    ckpts = {}
    for name in ("g2d_t", "mbf"):
        torch.manual_seed(1)
        model = insightface_g2d.get_model(name, num_features=16).eval()
        ckpts[name] = d / f"{name}.pt"
        torch.save(model.state_dict(), ckpts[name])
    return d, ckpts


@pytest.fixture(scope="module")
def cli_run(setup):
    """One CLI run: G2D-T=g2d_t:ckpt and an unlabelled mbf spec, two protocols."""
    d, ckpts = setup
    out = d / "out"
    argv = ["compare", "--model", f"G2D-T=g2d_t:{ckpts['g2d_t']}", "--model", f"mbf:{ckpts['mbf']}",
            "--target", str(d / "tiny.bin"), "--out", str(out), "--seed", "3", "--device", "cpu",
            "--batch-size", "4", "--quiet", "--far", "1e-1", "--far", "1e-3"]
    for p in PROTOCOLS:
        argv += ["--protocol", p]
    assert run_cli(main, argv) == 0
    return out, json.loads((out / "compare.json").read_text())


def _independent_metrics(ckpt, network, images, issame, protocol, seed):
    """Embeddings by a direct torch forward of (face, mirrored face), then the 10-fold metrics."""
    from insightface_g2d.evaluation.protocols import apply_protocol
    from insightface_g2d.evaluation.verification import verification_metrics

    model = insightface_g2d.get_model(network, num_features=16)
    model.load_state_dict(torch.load(ckpt, weights_only=True))
    model.eval()
    faces = apply_protocol(images, issame, protocol, seed=seed)
    x = to_tensor(faces)
    with torch.no_grad():  # small batches: mbf on CPU is 2x faster at batch 8 than at 48
        emb = torch.cat([model(b) + model(torch.flip(b, dims=[3])) for b in x.split(8)]).numpy()
    return verification_metrics(emb, issame)


def test_json_matches_an_independent_computation(setup, cli_run):
    d, ckpts = setup
    _, doc = cli_run
    images, issame = load_bin(d / "tiny.bin")
    assert [m["label"] for m in doc["models"]] == ["G2D-T", f"mbf:{ckpts['mbf']}"]
    # mbf is the slow one on CPU: check it on one protocol only
    for label, network, protocols in (("G2D-T", "g2d_t", PROTOCOLS), (f"mbf:{ckpts['mbf']}", "mbf", ["clean"])):
        for protocol in protocols:
            got = doc["results"][label]["tiny"][protocol]
            ref = _independent_metrics(ckpts[network], network, images, issame, protocol, seed=3)
            assert got["accuracy"] == pytest.approx(ref["accuracy"], abs=1e-9)
            assert got["accuracy_std"] == pytest.approx(ref["accuracy_std"], abs=1e-9)
            assert got["auc"] == pytest.approx(ref["auc"], abs=1e-6)
            assert got["num_pairs"] == 12
    # masking changes what the network sees: clean and masked numbers are not copies
    r = doc["results"]["G2D-T"]["tiny"]
    assert (r["clean"]["auc"], r["clean"]["accuracy"]) != (r["masked-masked"]["auc"], r["masked-masked"]["accuracy"])


def _table_rows(md, title):
    """{row label: [cells]} of the table after the line starting with `title`."""
    lines = md.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith(title))
    rows, header = {}, None
    for line in lines[start + 1:]:
        if not line.startswith("|"):
            if rows:
                break
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if header is None:
            header = cells
        elif not set(line) <= set("|-: "):
            rows[cells[0]] = dict(zip(header[1:], cells[1:]))
    return rows


def test_markdown_table_agrees_with_json(cli_run):
    out, doc = cli_run
    md = (out / "compare.md").read_text()
    acc = _table_rows(md, "Verification accuracy")
    tar = _table_rows(md, "TAR (%) at FAR=1e-03")
    tar1 = _table_rows(md, "TAR (%) at FAR=1e-01")
    assert set(acc) == {m["label"] for m in doc["models"]}
    for label, per_target in doc["results"].items():
        for protocol, m in per_target["tiny"].items():
            col = f"tiny {protocol}"
            assert acc[label][col] == fmt_percent(m["accuracy"], m["accuracy_std"])
            assert re.fullmatch(r"\d+\.\d\d ± \d+\.\d\d", acc[label][col])
            assert tar[label][col] == "n/a"  # 6 impostor pairs cannot measure FAR 1e-3
            assert m["tar_at_far"]["1e-03"] is None
            assert tar1[label][col] == fmt_percent(m["tar_at_far"]["1e-01"])


def test_roc_png_is_written(cli_run):
    out, doc = cli_run
    png = (out / "roc_tiny.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (700, 500)
    assert len(png) > 10_000  # curves, axes and legend, not an empty canvas
    curves = doc["roc"]["tiny"]
    assert set(curves["G2D-T"]) == set(PROTOCOLS)
    fpr, tpr = curves["G2D-T"]["clean"]["fpr"], curves["G2D-T"]["clean"]["tpr"]
    assert fpr[0] == 0.0 and fpr[-1] == 1.0 and tpr[-1] == 1.0
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)


def test_library_call_masks_once_per_target_and_protocol_and_reads_pair_lists(setup, tmp_path, monkeypatch):
    """compare() masks each (target, protocol) once whatever the number of models, and a pairs-list
    target holding the same pixels as the .bin gives the same numbers."""
    import cv2

    from insightface_g2d.evaluation import compare as compare_mod
    from insightface_g2d.evaluation import protocols

    d, _ = setup
    images, issame = load_bin(d / "tiny.bin")
    (tmp_path / "img").mkdir()
    lines = []
    for i in range(len(issame)):
        for j in (0, 1):
            cv2.imwrite(str(tmp_path / "img" / f"{2 * i + j:04d}.png"), images[2 * i + j][:, :, ::-1])
        lines.append(f"img/{2 * i:04d}.png\timg/{2 * i + 1:04d}.png\t{int(issame[i])}\n")
    (tmp_path / "pairs.txt").write_text("".join(lines))

    calls = []
    real = protocols.apply_protocol

    def counting(images, issame, protocol, **kw):
        calls.append(protocol)
        return real(images, issame, protocol, **kw)

    monkeypatch.setattr(protocols, "apply_protocol", counting)
    torch.manual_seed(0)
    models = [(f"m{i}", insightface_g2d.get_model("g2d_t", num_features=8).eval()) for i in range(2)]
    targets = [f"a={d / 'tiny.bin'}", f"b=pairs:{tmp_path / 'pairs.txt'},root={tmp_path}"]
    doc = compare_mod.compare(models, targets, protocols=["clean", "masked-clean"], batch_size=8, progress=False,
                              roc_target="b")
    assert calls == ["clean", "masked-clean"] * 2
    for label in ("m0", "m1"):
        for protocol in ("clean", "masked-clean"):
            a, b = doc["results"][label]["a"][protocol], doc["results"][label]["b"][protocol]
            assert (a["accuracy"], a["auc"]) == (b["accuracy"], b["auc"])
    assert doc["results"]["m0"]["a"]["clean"]["auc"] != doc["results"]["m1"]["a"]["clean"]["auc"]
    assert list(doc["roc"]) == ["b"] and doc["targets"][1]["root"] == str(tmp_path)
    assert "files" not in doc


def test_bad_inputs(setup, tmp_path, capsys):
    from insightface_g2d.evaluation.compare import compare, parse_target

    d, ckpts = setup
    bin_path = str(d / "tiny.bin")
    # a checkpoint of another network: one line on stderr, exit 2, before any data work
    rc = run_cli(main, ["compare", "--model", f"g2d_t:{ckpts['mbf']}", "--target", bin_path,
                        "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "does not match network 'g2d_t'" in err and "Traceback" not in err
    rc = run_cli(main, ["compare", "--model", f"g2d_t:{tmp_path / 'missing.pt'}", "--target", bin_path,
                        "--out", str(tmp_path / "o")])
    assert rc == 2 and "does not exist" in capsys.readouterr().err
    with pytest.raises(DataError, match="does not exist"):
        compare([("a", f"g2d_t:{ckpts['g2d_t']}")], [str(tmp_path / "nope.bin")], progress=False)
    with pytest.raises(ConfigError, match="labelled 'a'"):
        compare([("a", f"g2d_t:{ckpts['g2d_t']}"), ("a", f"mbf:{ckpts['mbf']}")], [bin_path], progress=False)
    with pytest.raises(ConfigError, match="unknown protocol"):
        compare([("a", f"g2d_t:{ckpts['g2d_t']}")], [bin_path], protocols=["half-masked"], progress=False)
    with pytest.raises(ConfigError, match="root=IMAGE_DIR"):
        parse_target("pairs:lfw/pairs.txt")
    t = parse_target("lfw=pairs:x/pairs.txt,root=x/img,landmarks=x/l.tsv")
    assert (t.name, t.path, t.root, t.landmarks) == ("lfw", "x/pairs.txt", "x/img", "x/l.tsv")
    assert parse_target("data/cfp_fp.bin").name == "cfp_fp"
    assert not (tmp_path / "o").exists()


def test_no_flip_embeds_each_face_alone(setup, tmp_path):
    """--no-flip: accuracies equal an independent computation on single-face embeddings."""
    from insightface_g2d.embedders.torch_network import TorchEmbedder
    from insightface_g2d.evaluation.verification import verification_metrics

    d, ckpts = setup
    argv = ["compare", "--model", f"T=g2d_t:{ckpts['g2d_t']}", "--target", str(d / "tiny.bin"), "--out",
            str(tmp_path), "--device", "cpu", "--quiet", "--protocol", "clean", "--no-flip"]
    assert run_cli(main, argv) == 0
    doc = json.loads((tmp_path / "compare.json").read_text())
    assert doc["flip"] is False
    images, issame = load_bin(d / "tiny.bin")
    emb = TorchEmbedder.from_checkpoint("g2d_t", str(ckpts["g2d_t"])).embed_images(images, flip=False, progress=False)
    want = verification_metrics(emb, issame)["accuracy"]
    assert doc["results"]["T"]["tiny"]["clean"]["accuracy"] == pytest.approx(want, abs=1e-9)
