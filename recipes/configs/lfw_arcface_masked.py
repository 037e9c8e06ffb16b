"""Real-face comparison, arm (b): ArcFace with mask augmentation. The same network as
lfw_g2d.py trained from identity labels alone (CosFace margin), on masked and clean faces of the
same LFW DevTrain images; no teacher.

    g2d-train recipes/configs/lfw_arcface_masked.py --set rec=work_dirs/lfw/devtrain \
        --output work_dirs/lfw/arcface_masked
"""
from easydict import EasyDict as edict

config = edict()
config.network = "g2d_t"
config.embedding_size = 128
config.margin_list = (1.0, 0.0, 0.35)  # CosFace
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

config.teacher = None
config.masks = dict(prob=0.5, styles=("surgical", "kn95", "cloth", "patterned"),
                    positions=("normal", "high", "low"))

# grad_clip=None: the README table was measured without gradient clipping (it applied on CUDA only
# then; it now applies on every device, 5.0 by default).
config.stages = [
    dict(name="arcface", kind="arcface", network="g2d_t", inputs=("masked",), steps=700, optimizer="adamw",
         lr=2e-3, weight_decay=5e-4, warmup_steps=50, grad_clip=None, scale=32.0),
]

config.cpu_threads = 1
config.checkpoint_every = 500
config.eval = dict(enabled=False)
