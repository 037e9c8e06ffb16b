"""Real faces, real teacher: G2D on LFW View 1 DevTrain, distilled from dlib's ResNet.

Part of the real-face comparison (`g2d-lfw compare`, README "Real faces"); run alone:

    g2d-train recipes/configs/lfw_g2d.py --set rec=work_dirs/lfw/devtrain \
        --set teacher.cache=work_dirs/lfw/cache_dlib --output work_dirs/lfw/g2d

Data: LFW aligned to 112x112 from landmarks5.tsv, View 1 DevTrain people only (9,525 images of
4,038 people); evaluation on DevTest pairs (disjoint people). Teacher: dlib's face recognizer
(128-d) through a `g2d-cache build --teacher-dlib` cache; its embeddings are centred before
distillation (teacher.geometry, the default). Masks: four styles in training; `n95` and `textured`
are held out for the unseen-style protocols.
"""
from easydict import EasyDict as edict

config = edict()
config.network = "g2d_t"
config.embedding_size = 128            # = the dlib teacher's, so first-order distillation applies
config.margin_list = (1.0, 0.0, 0.35)
config.output = None
config.fp16 = False
config.batch_size = 64
config.seed = 2048
config.num_workers = 0
config.frequent = 50

config.rec = "work_dirs/lfw/devtrain"
config.num_classes = None
config.num_image = None
config.num_epoch = 1
config.warmup_epoch = 0
config.val_targets = []

config.teacher = dict(cache="work_dirs/lfw/cache_dlib", geometry="center")
config.masks = dict(prob=1.0, styles=("surgical", "kn95", "cloth", "patterned"),
                    positions=("normal", "high", "low"))

# grad_clip=None: the README table was measured without gradient clipping (it applied on CUDA only
# then; it now applies on every device, 5.0 by default).
config.stages = [
    dict(name="inpaint", steps=200, batch_size=32, lr=1e-3, warmup_steps=50, grad_clip=None,
         decoder_widths=(64, 32, 16), disc_widths=(32, 64, 128),
         losses=dict(l1=1.0, identity=0.0, adversarial=0.01)),
    dict(name="reform", steps=800, optimizer="adamw", lr=2e-3, weight_decay=5e-4, warmup_steps=50, grad_clip=None,
         masks=dict(prob=0.75)),
]

config.cpu_threads = 1
config.checkpoint_every = 500
config.preview_every = 300
config.eval = dict(enabled=False)
