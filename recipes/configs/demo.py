"""CPU demo: baseline ArcFace vs G2D on built-in synthetic faces, end to end in about 7 to 11 minutes on a
2-core machine (it depends on the machine).

    g2d-train recipes/configs/demo.py

1. `baseline` (arcface stage): a tiny network trained on clean faces only, as ArcFace is; it is
   the baseline of the comparison and the teacher of the G2D stages.
2. `inpaint`, `reform`, `classify`: a tiny G2D (g2d_t, 128-d) trained greedily on masked faces.
3. evaluation on pairs of held-out identities (not seen in training): clean, masked-masked and
   masked-clean; the table goes to work_dirs/demo/eval.md.
"""
from easydict import EasyDict as edict

config = edict()
config.network = "g2d_t"
config.embedding_size = 128
config.margin_list = (1.0, 0.0, 0.35)  # CosFace: converges in few steps at this size
config.output = None
config.fp16 = False
config.batch_size = 32
config.seed = 2048
config.num_workers = 0
config.frequent = 20

config.rec = "synthetic:ids=100,per_id=24,seed=2048"
config.num_classes = 100
config.num_image = 2400
config.num_epoch = 3
config.warmup_epoch = 0
config.val_targets = []

config.teacher = dict(stage="baseline")
config.masks = dict(prob=1.0, styles=None, positions=("normal", "high", "low"))

config.stages = [
    dict(name="baseline", kind="arcface", network="g2d_t", epochs=3, optimizer="adamw", lr=2e-3,
         weight_decay=5e-4, warmup_steps=20, scale=32.0),
    dict(name="inpaint", epochs=1, batch_size=16, lr=1e-3, warmup_steps=10,
         decoder_widths=(64, 32, 16), disc_widths=(32, 64, 128),
         losses=dict(l1=1.0, identity=0.2, adversarial=0.01)),
    dict(name="reform", epochs=3, optimizer="adamw", lr=2e-3, weight_decay=5e-4, warmup_steps=20,
         masks=dict(prob=0.75)),
    dict(name="classify", epochs=1, optimizer="adamw", lr=5e-3, weight_decay=0.0),
]

config.cpu_threads = 1  # one torch thread: fastest on a 2-core CPU that is running anything else
config.checkpoint_every = 100
config.preview_every = 50

config.eval = dict(
    enabled=True,
    pairs="synthetic:ids=60,per_id=8,seed=2048,offset=100000",
    num_pairs=600,
    models={"ArcFace baseline (clean-trained g2d_t)": "stage:baseline", "G2D (g2d_t)": "model"},
    seed=0,
)
