"""Real-face comparison, arm (f): G2D from a pretrained start. dlib's ResNet cut in two after layer3:
its front (chip, stem, layers 1-3: 128 x 8 x 8) is G2D's encoder, its back (layers 4-5, pooling, fc)
the reformer, both started from dlib's weights. The inpaint stage fine-tunes the encoder
generatively (a decoder attached at the cut; identity loss through the live PyTorch teacher), then
reform distils the teacher's relations into the reformer with the encoder frozen.

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
    dict(name="inpaint", steps=100, batch_size=16, lr=2e-4, lr_mult=dict(encoder=0.1), warmup_steps=20,
         grad_clip=None, decoder_widths=(64, 32, 16), disc_widths=(32, 64, 128),
         teacher=dict(dlib=True, geometry="center"), losses=dict(l1=1.0, identity=1.0, adversarial=0.01)),
    dict(name="reform", steps=300, optimizer="adamw", lr=1e-4, weight_decay=5e-4, warmup_steps=20, grad_clip=None,
         student_geometry="teacher", masks=dict(prob=0.75)),
]

config.cpu_threads = 1
config.checkpoint_every = 200
config.preview_every = 100
config.eval = dict(enabled=False)
