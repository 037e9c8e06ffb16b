"""G2D inside a real arcface_torch checkout: `git apply g2d.patch`, then arcface_torch's own scripts.

Needs ARCFACE_TORCH_ROOT = path of a pristine insightface ``recognition/arcface_torch`` folder
(skipped without it; tests/test_arcface_patch.py checks the patch everywhere), and git. The
checkout is never modified: every test works on a copy in a temporary folder, and arcface_torch's
scripts run in subprocesses with that copy as working directory, as a user runs them.

Set G2D_INTEGRATION_LOG=FILE to get every command run here and what it printed.

What each script needs besides torch: eval/verification.py mxnet + scikit-learn; torch2onnx.py
onnx (and onnxscript on torch >= 2.9, whose torch.onnx.export uses the dynamo exporter by
default); eval_ijbc.py pandas, scikit-learn, prettytable, matplotlib (menpo, used only for plot
colours, gets a stand-in when missing) and CUDA (its .cuda() calls are made no-ops on CPU);
train_v2.py CUDA + NCCL + torchvision + tensorboard (skipped without CUDA).
"""
import hashlib
import importlib.util
import json
import os
import pickle
import resource
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import insightface_g2d
from insightface_g2d.backbones.registry import is_model

ROOT = os.environ.get("ARCFACE_TORCH_ROOT", "")
REPO = Path(__file__).resolve().parents[1]
PATCH = REPO / "recipes" / "arcface_torch" / "g2d.patch"
MAKE_PATCH = REPO / "recipes" / "arcface_torch" / "make_patch.py"
LOG = os.environ.get("G2D_INTEGRATION_LOG", "")

pytestmark = [
    pytest.mark.skipif(not ROOT, reason="ARCFACE_TORCH_ROOT is not set: point it at insightface's "
                       "recognition/arcface_torch folder to run G2D inside a real arcface_torch "
                       "(tests/test_arcface_patch.py runs without it)"),
    pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed (g2d.patch is applied with it)"),
]


def missing(*modules):
    return [m for m in modules if importlib.util.find_spec(m) is None]


def tree_digest(root, skip=("__pycache__",)):
    root = Path(root)
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not set(p.relative_to(root).parts) & set(skip)}


def run(args, cwd, timeout=180, check=True, env_extra=None):
    """Run a command as a user would (cwd = the checkout copy); log it; fail with its output."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1", MPLBACKEND="Agg")
    env.update(env_extra or {})
    cpu0, wall0 = _children_cpu(), time.perf_counter()
    proc = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    if LOG:
        with open(LOG, "a") as f:
            shown = " ".join(str(a) for a in args).replace(sys.executable, "python")
            f.write(f"$ (cd {cwd}) {shown}\n[exit {proc.returncode}, {time.perf_counter() - wall0:.1f} s wall, "
                    f"{_children_cpu() - cpu0:.1f} s CPU]\n{proc.stdout}{proc.stderr}\n")
    if check:
        assert proc.returncode == 0, (f"{args} exited {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}"
                                      f"\n--- stderr\n{proc.stderr[-4000:]}")
    return proc


def _children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def python(code_or_args, cwd, **kw):
    args = ["-c", textwrap.dedent(code_or_args)] if isinstance(code_or_args, str) else list(code_or_args)
    return run([sys.executable, *args], cwd, **kw)


def copy_checkout(dest):
    """A copy of ARCFACE_TORCH_ROOT, which must be arcface_torch without G2D."""
    init = Path(ROOT) / "backbones" / "__init__.py"
    if not init.is_file():
        pytest.fail(f"ARCFACE_TORCH_ROOT={ROOT} is not arcface_torch: no backbones/__init__.py")
    if "# >>> insightface_g2d " in init.read_text():
        pytest.fail(f"ARCFACE_TORCH_ROOT={ROOT} already has G2D: point it at a pristine arcface_torch "
                    "(or take the patch out with git apply -R g2d.patch)")
    shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "work_dirs", ".git"))
    return Path(dest)


def apply_patch(repo):
    """A copy of the checkout at repo/recognition/arcface_torch, with g2d.patch applied by git at the
    root of `repo` as in an insightface clone. Returns the arcface_torch folder."""
    root = copy_checkout(Path(repo) / "recognition" / "arcface_torch")
    run(["git", "init", "-q", repo], repo)
    run(["git", "apply", "--check", PATCH], repo)
    run(["git", "apply", PATCH], repo)
    return root


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("arcface_integration")


@pytest.fixture(scope="module")
def patched(work):
    """A copy of the checkout with g2d.patch applied."""
    return apply_patch(work / "patched_repo")


def write_model_pt(path, network, seed=0):
    """model.pt as the G2D recipe (and train_v2) writes it: a plain state dict of get_model(network)."""
    torch.manual_seed(seed)
    net = insightface_g2d.get_model(network, dropout=0.0, fp16=False, num_features=512)
    with torch.no_grad():  # non-trivial BatchNorm statistics, so a wrong load shows in the outputs
        for m in net.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def g2d_model_pt(work):
    """The full-size network, for the scripts whose docs name `--network g2d`."""
    return write_model_pt(work / "g2d" / "model.pt", "g2d")


@pytest.fixture(scope="module")
def g2d_t_model_pt(work):
    """The tiny G2D, where a script embeds many images or traces the network (CPU time)."""
    return write_model_pt(work / "g2d_t" / "model.pt", "g2d_t")


def load_reference(network, path, num_features=512):
    net = insightface_g2d.get_model(network, dropout=0.0, fp16=False, num_features=num_features)
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return net.eval()


# ------------------------------------------------------------------------------ git apply g2d.patch
def test_g2d_patch_applies_and_is_what_make_patch_writes(work):
    """`git apply` takes the patch on a copy of the checkout and changes only the get_model block and
    the new configs/g2d_*.py; make_patch.py, given this checkout, writes exactly the committed
    patch (fails when recipes/configs changed since: rerun make_patch.py)."""
    before = tree_digest(copy_checkout(work / "pristine"))
    after = tree_digest(apply_patch(work / "apply_check"))
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    added = {k for k in changed if k not in before}
    assert changed - added == {"backbones/__init__.py"}
    assert added and all(k.startswith("configs/g2d") for k in added)
    check = run([sys.executable, MAKE_PATCH, ROOT, "--check"], work, check=False)
    assert check.returncode == 0, check.stdout + check.stderr


def test_backbones_get_model_builds_g2d_and_keeps_arcface_networks(patched):
    out = python("""
        import json
        from backbones import get_model
        nets = {}
        for name in ("g2d", "g2d_s", "g2d_t", "g2d_l", "r18", "mbf"):
            net = get_model(name, dropout=0.0, fp16=False, num_features=512)
            nets[name] = [type(net).__module__, sum(p.numel() for p in net.parameters())]
        print(json.dumps(nets))
        """, patched)
    nets = json.loads(out.stdout.strip().splitlines()[-1])
    for name in ("g2d", "g2d_s", "g2d_t", "g2d_l"):
        module, count = nets[name]
        assert module.startswith("insightface_g2d.backbones")
        with torch.device("meta"):  # shapes only: no memory, no initialisation
            ours = insightface_g2d.get_model(name, dropout=0.0, fp16=False, num_features=512)
        assert count == sum(p.numel() for p in ours.parameters())
    assert nets["r18"][0] == "backbones.iresnet" and nets["mbf"][0] == "backbones.mobilefacenet"


def test_get_config_reads_the_patched_in_recipe_configs(patched):
    rels = sorted(f"configs/{p.name}" for p in (patched / "configs").glob("g2d*.py")
                  if not (Path(ROOT) / "configs" / p.name).exists())
    assert rels
    out = python(f"""
        import json, sys, torch
        from backbones import get_model
        from utils.utils_config import get_config
        rows = {{}}
        for rel in {rels!r}:
            # get_config updates configs.base's own dict in place: start each config from a fresh import
            for name in [m for m in sys.modules if m.startswith("configs.")]:
                del sys.modules[name]
            cfg = get_config(rel)
            # what train_v2.py does with a config, on the CPU
            net = get_model(cfg.network, dropout=0.0, fp16=cfg.fp16, num_features=cfg.embedding_size).eval()
            with torch.no_grad():
                shape = list(net(torch.zeros(2, 3, 112, 112)).shape)
            rows[rel] = dict(network=cfg.network, embedding_size=cfg.embedding_size, output=cfg.output,
                             keys=sorted(cfg), shape=shape)
        print(json.dumps(rows))
        """, patched)
    rows = json.loads(out.stdout.strip().splitlines()[-1])
    base_keys = {"margin_list", "network", "embedding_size", "fp16", "batch_size", "optimizer", "lr", "seed",
                 "num_workers", "output"}
    for rel, row in rows.items():
        assert is_model(row["network"]), rel  # a G2D network, or a whole one the recipe trains (dlib_resnet)
        assert base_keys <= set(row["keys"]), f"{rel} lacks arcface_torch base keys"
        assert row["shape"] == [2, row["embedding_size"]]
        assert row["output"]  # set by the config or defaulted by get_config to work_dirs/<name>


# ------------------------------------------------------------------------------ eval/verification.py
# arcface_torch's verification.evaluate calls scipy's interp1d(kind="slinear") on FAR values that
# repeat; scipy >= 1.9 refuses repeated x ("Expect x to not have duplicates", insightface issues
# #2152 and #2438, also during train_v2's validation). The shim maps "slinear" to "linear" (the
# same piecewise-linear interpolant, which accepts repeated x). It only feeds the TAR@FAR value
# that test() computes and throws away; the accuracy it returns is untouched.
SCIPY_SHIM = """
import scipy.interpolate as _interpolate
_interp1d = _interpolate.interp1d
_interpolate.interp1d = lambda x, y, kind="linear", *a, **k: _interp1d(x, y, "linear" if kind == "slinear" else kind, *a, **k)
"""


def write_pairs_bin(path, n_pairs=20):
    """A verification .bin in arcface_torch's format, written here: pickle of (PNG bytes, issame).

    Genuine and impostor pairs alternate and n_pairs >= 20, so each of the 10 folds has both kinds
    (arcface_torch's calculate_val_far divides by a fold's impostor count)."""
    from insightface_g2d.data.synthetic import render_face

    bins, issame = [], []
    for i in range(n_pairs):
        same = i % 2 == 0
        a, _ = render_face(7, i, 0)
        b, _ = render_face(7, i if same else i + 1000, 1)
        for img in (a, b):
            ok, buf = cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
            assert ok
            bins.append(buf.tobytes())
        issame.append(same)
    with open(path, "wb") as f:
        pickle.dump((bins, issame), f, protocol=4)
    return bins, np.array(issame)


@pytest.mark.skipif(bool(missing("mxnet", "sklearn")),
                    reason=f"arcface_torch's eval/verification.py needs {missing('mxnet', 'sklearn')}")
def test_verification_load_bin_and_test_on_a_g2d_backbone(patched, work, g2d_t_model_pt):
    bin_path = work / "pairs.bin"
    bins, issame = write_pairs_bin(bin_path)
    emb_path = work / "verification_embeddings.npy"
    out = python(SCIPY_SHIM + textwrap.dedent(f"""
        import numpy as np, torch
        from backbones import get_model
        from eval import verification
        data_set = verification.load_bin({str(bin_path)!r}, (112, 112))
        backbone = get_model("g2d_t", dropout=0, fp16=False)
        backbone.load_state_dict(torch.load({str(g2d_t_model_pt)!r}))
        backbone.eval()
        acc1, std1, acc2, std2, xnorm, embeddings_list = verification.test(data_set, backbone, 10, nfolds=10)
        np.save({str(emb_path)!r}, np.stack(embeddings_list))
        print("RESULT", acc2, std2, xnorm)
        """), patched)
    acc2, std2, xnorm = map(float, out.stdout.split("RESULT")[-1].split())
    # the same embeddings, computed here without arcface_torch (PNG: decoding is exact)
    net = load_reference("g2d_t", g2d_t_model_pt)
    imgs = np.stack([cv2.cvtColor(cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
                     for b in bins])
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float().div(255).sub(0.5).div(0.5)
    with torch.no_grad():
        ours = np.stack([net(x).numpy(), net(torch.flip(x, dims=[3])).numpy()])
    theirs = np.load(emb_path)
    assert theirs.shape == (2, 40, 512)
    np.testing.assert_allclose(theirs, ours, rtol=1e-4, atol=1e-4)
    assert xnorm == pytest.approx(np.linalg.norm(ours, axis=2).mean(), rel=1e-4)
    # arcface_torch's accuracy equals this project's verification metrics on the same embeddings
    from insightface_g2d.evaluation.verification import verification_metrics

    metrics = verification_metrics(theirs[0] + theirs[1], issame, nfolds=10)
    assert acc2 == pytest.approx(metrics["accuracy"], abs=1e-9)
    assert std2 == pytest.approx(metrics["accuracy_std"], abs=1e-9)


# ------------------------------------------------------------------------------ torch2onnx.py
def _onnx_skip_reason():
    gone = missing("onnx", "onnxruntime")
    if gone:
        return f"torch2onnx.py needs {gone}"
    major_minor = tuple(int(v) for v in torch.__version__.split("+")[0].split(".")[:2])
    if major_minor >= (2, 9) and missing("onnxscript"):
        return (f"torch {torch.__version__}: torch.onnx.export (called by torch2onnx.py without dynamo=False) "
                "uses the dynamo exporter, which needs onnxscript (pip install onnxscript)")
    return None


@pytest.mark.skipif(_onnx_skip_reason() is not None, reason=str(_onnx_skip_reason()))
def test_torch2onnx_exports_g2d(patched, work, g2d_t_model_pt):
    """torch2onnx.py --network g2d_t (the tiny G2D: the dynamo exporter needs ~30 s of CPU for g2d)."""
    import onnxruntime as ort

    out_path = work / "g2d_t.onnx"
    run([sys.executable, "torch2onnx.py", g2d_t_model_pt, "--network", "g2d_t", "--output", out_path], patched)
    session = ort.InferenceSession(str(out_path), providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    assert inp.name == "data" and inp.shape[1:] == [3, 112, 112]
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 112, 112)).astype(np.float32)
    (y,) = session.run(None, {"data": x})
    with torch.no_grad():
        ref = load_reference("g2d_t", g2d_t_model_pt)(torch.from_numpy(x)).numpy()
    assert y.shape == (1, 512)
    np.testing.assert_allclose(y, ref, rtol=1e-3, atol=1e-4)


# ------------------------------------------------------------------------------ eval_ijbc.py
IJBC_RUNNER = '''\
"""Run arcface_torch's eval_ijbc.py unchanged on the CPU (it calls .cuda() unconditionally)."""
import os, runpy, sys, types
import torch

if not torch.cuda.is_available():
    torch.nn.Module.cuda = lambda self, device=None: self
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
try:
    import menpo.visualize.viewmatplotlib  # noqa: F401  (only used for plot colours)
except ImportError:
    import matplotlib.cm

    def sample_colours_from_colourmap(n, name):
        cmap = matplotlib.cm.get_cmap(name)
        return [cmap(i / max(n, 1))[:3] for i in range(n)]

    parts = ["menpo", "menpo.visualize", "menpo.visualize.viewmatplotlib"]
    for name in parts:
        sys.modules[name] = types.ModuleType(name)
    sys.modules[parts[-1]].sample_colours_from_colourmap = sample_colours_from_colourmap
sys.path.insert(0, os.getcwd())
sys.argv = ["eval_ijbc.py"] + sys.argv[1:]
runpy.run_path("eval_ijbc.py", run_name="__main__")
'''


def write_ijb(root):
    """A tiny IJB-C layout (meta files + loose crops) with the names and formats eval_ijbc.py reads.

    Images: synthetic faces pasted into larger loose crops; template 6 is template 1's image again,
    so pair (1, 6) must score exactly 1.
    """
    from insightface_g2d.data.synthetic import render_face

    (root / "meta").mkdir(parents=True)
    (root / "loose_crop").mkdir()
    images = [(1, 1, 0, 0), (2, 2, 0, 1), (2, 3, 0, 2), (3, 4, 1, 0), (4, 5, 1, 1), (5, 6, 2, 0), (6, 7, 0, 0)]
    tid_mid, lmk_lines = [], []
    for k, (tid, mid, ident, photo) in enumerate(images):
        face, lmk = render_face(3, ident, photo)
        canvas = np.full((160, 150, 3), 90, np.uint8)
        canvas[20:132, 15:127] = face
        name = f"{k + 1}.jpg"
        cv2.imwrite(str(root / "loose_crop" / name), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 98])
        pts = (np.asarray(lmk, np.float64) + [15, 20]).reshape(-1)
        tid_mid.append(f"{name} {tid} {mid}")
        lmk_lines.append(f"{name} " + " ".join(f"{v:.3f}" for v in pts) + f" {0.6 + 0.05 * k:.3f}")
    (root / "meta" / "ijbc_face_tid_mid.txt").write_text("\n".join(tid_mid) + "\n")
    (root / "meta" / "ijbc_name_5pts_score.txt").write_text("\n".join(lmk_lines) + "\n")
    pairs = ["1 6 1", "1 2 1", "3 4 1", "1 3 0", "2 5 0", "4 5 0"]
    (root / "meta" / "ijbc_template_pair_label.txt").write_text("\n".join(pairs) + "\n")


@pytest.mark.skipif(bool(missing("pandas", "sklearn", "prettytable", "matplotlib", "skimage")),
                    reason=f"arcface_torch's eval_ijbc.py needs "
                           f"{missing('pandas', 'sklearn', 'prettytable', 'matplotlib', 'skimage')}")
def test_eval_ijbc_runs_with_network_g2d(patched, work, g2d_model_pt):
    ijb = work / "IJBC"
    write_ijb(ijb)
    runner = work / "run_eval_ijbc_on_cpu.py"
    runner.write_text(IJBC_RUNNER)
    result_dir = work / "ijb_results"
    out = python([runner, "--model-prefix", g2d_model_pt, "--image-path", ijb, "--result-dir", result_dir,
                  "--batch-size", "4", "--network", "g2d", "--job", "g2d", "--target", "IJBC"], patched)
    assert "ijbc-IJBC" in out.stdout  # the TPR@FPR table it prints at the end
    scores = np.load(result_dir / "g2d" / "ijbc.npy")
    assert scores.shape == (6,)
    assert scores[0] == pytest.approx(1.0, abs=1e-6)
    assert (result_dir / "g2d" / "ijbc.pdf").is_file()
    # this project's IJB evaluation of the same model on the same layout gives the same scores
    from insightface_g2d.evaluation.ijb import evaluate_ijb

    ours = evaluate_ijb(load_reference("g2d", g2d_model_pt), str(ijb), "IJBC", progress=False, batch_size=4)
    np.testing.assert_allclose(scores, ours["scores"], atol=2e-3)


# ------------------------------------------------------------------------------ train_v2.py
def write_train_job(root, n_ids=8, per_id=8):
    """A tiny arcface_torch RecordIO training set (record 0 = header [first image key + count,
    end]; images 1..N, float label = class) and an lfw.bin for the verification callback."""
    from insightface_g2d.data.recordio import IndexedRecordIOWriter, IRHeader, pack, pack_img
    from insightface_g2d.data.synthetic import render_face

    root.mkdir(parents=True, exist_ok=True)
    n = n_ids * per_id
    with IndexedRecordIOWriter(root / "train.rec", root / "train.idx") as w:
        w.write_idx(0, pack(IRHeader(2, [n + 1, n + 1 + n_ids], 0, 0), b""))
        for k in range(n):
            face, _ = render_face(11, k // per_id, k % per_id)
            w.write_idx(k + 1, pack_img(IRHeader(0, float(k // per_id), k + 1, 0), face))
    write_pairs_bin(root / "lfw.bin")
    return n, n_ids


@pytest.mark.skipif(bool(missing("mxnet")), reason="reading train.rec as arcface_torch does needs mxnet")
def test_train_job_data_reads_like_arcface_torch_mxfacedataset(work):
    """The data the train_v2 test uses, read the way arcface_torch's MXFaceDataset reads it (checked
    here because train_v2 itself cannot run on this machine)."""
    import mxnet as mx

    rec_dir = work / "train_job_check"
    n, n_ids = write_train_job(rec_dir)
    imgrec = mx.recordio.MXIndexedRecordIO(str(rec_dir / "train.idx"), str(rec_dir / "train.rec"), "r")
    header, _ = mx.recordio.unpack(imgrec.read_idx(0))
    assert header.flag > 0
    imgidx = list(range(1, int(header.label[0])))
    assert len(imgidx) == n and int(header.label[1]) - int(header.label[0]) == n_ids
    header, img = mx.recordio.unpack(imgrec.read_idx(imgidx[-1]))
    assert mx.image.imdecode(img).asnumpy().shape == (112, 112, 3)
    assert int(header.label) == n_ids - 1


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train_v2_skip_reason():
    if not torch.cuda.is_available():
        return ("arcface_torch's train_v2.py hard-codes CUDA and NCCL (torch.cuda.set_device, "
                "init_process_group('nccl'), CUDA streams in its data loader); no CUDA device here. "
                "On CPU the G2D recipe trains with g2d-train instead")
    gone = missing("mxnet", "torchvision", "tensorboard", "sklearn")
    return f"train_v2.py needs {gone}" if gone else None


@pytest.mark.skipif(_train_v2_skip_reason() is not None, reason=str(_train_v2_skip_reason()))
def test_train_v2_trains_a_g2d_backbone(patched, work):
    rec_dir = work / "train_job"
    n, n_ids = write_train_job(rec_dir)
    out_dir = work / "train_job_out"
    cfg = patched / "configs" / "g2d_itest_train.py"
    cfg.write_text(textwrap.dedent(f"""\
        from easydict import EasyDict as edict

        config = edict()
        config.network = "g2d_t"
        config.embedding_size = 128
        config.rec = {str(rec_dir)!r}
        config.num_classes = {n_ids}
        config.num_image = {n}
        config.num_epoch = 1
        config.warmup_epoch = 0
        config.batch_size = 16
        config.lr = 0.02
        config.fp16 = True
        config.sample_rate = 1.0
        config.verbose = 2
        config.frequent = 1
        config.num_workers = 0
        config.val_targets = ["lfw"]
        config.output = {str(out_dir)!r}
        """))
    shim = work / "scipy_compat"  # see SCIPY_SHIM: the validation callback would stop training
    shim.mkdir(exist_ok=True)
    (shim / "sitecustomize.py").write_text(SCIPY_SHIM)
    try:
        run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=1", f"--master_port={_free_port()}",
             "train_v2.py", "configs/g2d_itest_train.py"], patched, timeout=600,
            env_extra={"PYTHONPATH": os.pathsep.join([str(shim)] + sys.path[1:])})
    finally:
        cfg.unlink()
    log = (out_dir / "training.log").read_text()
    assert "Accuracy-Flip" in log
    load_reference("g2d_t", out_dir / "model.pt", num_features=128)  # strict load into our network
