"""Real-mask candidate: arm (e) trained with the `worn` mask style beside the four mask styles:
masks as photos of people show them (masks/styles/worn.py): matte, wide, from the nose bridge to
under the chin, black most often, else dark grey, navy, white or pale blue, ear loops seldom seen.
Everything else is arm (e); the held-out styles (n95, textured) stay held out.

    g2d-train recipes/configs/lfw_teacher_finetuned_worn.py --set rec=work_dirs/lfw/devtrain \
        --set teacher.cache=work_dirs/lfw/cache_dlib --output work_dirs/lfw/teacher_finetuned_worn
"""
from easydict import EasyDict as edict

config = edict()
config.network = "dlib_resnet"
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
config.masks = dict(prob=1.0, styles=("surgical", "kn95", "cloth", "patterned", "worn"),
                    positions=("normal", "high", "low"))

config.stages = [
    dict(name="student", kind="distill", steps=300, optimizer="adamw", lr=3e-5, weight_decay=5e-4, warmup_steps=20,
         grad_clip=None,
         inputs=("masked", "clean"), student_geometry="teacher", losses=dict(rd1=1.0, rd2=1.0, rd3=1.0, margin=0.0)),
]

config.cpu_threads = 1
config.checkpoint_every = 200
config.preview_every = 1000
config.eval = dict(enabled=False)
