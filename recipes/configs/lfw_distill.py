"""Real-face comparison, arm (c): plain distillation. The same network as lfw_g2d.py, encoder and
reformer trained end to end by relational distillation from the dlib teacher; no inpainting stage.
It isolates what the generative encoder brings.

    g2d-train recipes/configs/lfw_distill.py --set rec=work_dirs/lfw/devtrain \
        --set teacher.cache=work_dirs/lfw/cache_dlib --output work_dirs/lfw/distill
"""
from easydict import EasyDict as edict

config = edict()
config.network = "g2d_t"
config.embedding_size = 128
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
    dict(name="distill", kind="reform", train=["encoder", "reformer"], steps=700, optimizer="adamw",
         lr=2e-3, weight_decay=5e-4, warmup_steps=50, grad_clip=None, masks=dict(prob=0.75)),
]

config.cpu_threads = 1
config.checkpoint_every = 500
config.eval = dict(enabled=False)
