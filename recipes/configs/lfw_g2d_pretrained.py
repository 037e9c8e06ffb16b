"""Real-face comparison, arm (f): G2D from a pretrained start. dlib's ResNet cut in two after layer2:
its front (chip, stem, layers 1-2: 64 x 17 x 17) is G2D's encoder, kept frozen with dlib's weights;
its back (layers 3-5, pooling, fc), started from dlib's weights too, is the reformer, trained by
relational distillation from the teacher's clean-face embeddings while it sees masked faces (three
in four) and clean ones. The generative stage is left out: fine-tuning the encoder by inpainting
first (an inpaint stage before reform) lowered clean accuracy and left masked accuracy level (see
docs/real_faces.md).

    g2d-train recipes/configs/lfw_g2d_pretrained.py --set rec=work_dirs/lfw/devtrain \
        --set teacher.cache=work_dirs/lfw/cache_dlib --output work_dirs/lfw/g2d_pretrained
"""
from easydict import EasyDict as edict

config = edict()
config.network = "g2d_dlib"
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
