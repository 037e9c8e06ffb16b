"""Arm (l): arm (f) seeing only the upper face. The network is `g2d_dlib+upper66`: G2D cut from
dlib's ResNet as in (f), whose input has every row from 66 down (of the 112 frame; eyes at row 52,
the nose tip at 72) set to flat grey, on masked faces and clean ones alike, in training and in use.
The reformer learns the teacher's relations between clean full faces from the upper face only, so
the mask's look (its renderer) never reaches the network; masks worn high still show above row 66.

    g2d-train recipes/configs/lfw_g2d_upper.py --set rec=work_dirs/lfw/devtrain \
        --set teacher.cache=work_dirs/lfw/cache_dlib --output work_dirs/lfw/g2d_upper
"""
from easydict import EasyDict as edict

config = edict()
config.network = "g2d_dlib+upper66"
config.embedding_size = 128
config.margin_list = (1.0, 0.0, 0.35)
config.output = None
config.fp16 = False
config.batch_size = 32
config.seed = 2048
config.num_workers = 0
config.frequent = 25

config.rec = "work_dirs/lfw/devtrain"
config.num_classes = None
config.num_image = None
config.num_epoch = 1
config.warmup_epoch = 0
config.val_targets = []

config.init = "dlib"
config.teacher = dict(cache="work_dirs/lfw/cache_dlib", geometry="center")
config.masks = dict(prob=1.0, styles=("surgical", "kn95", "cloth", "patterned"),
                    positions=("normal", "high", "low"))

config.stages = [
    dict(name="reform", steps=1000, optimizer="adamw", lr=5e-5, weight_decay=5e-4, warmup_steps=50, grad_clip=None,
         student_geometry="teacher", masks=dict(prob=0.75)),
]

config.cpu_threads = 1
config.checkpoint_every = 200
config.preview_every = 100
config.eval = dict(enabled=False)
