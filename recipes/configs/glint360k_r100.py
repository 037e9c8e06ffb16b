"""G2D on Glint360K with the arcface_torch CosFace r100 (glint360k_cosface_r100_fp16_0.1) as teacher.

    torchrun --nproc_per_node 8 -m insightface_g2d.cli.train recipes/configs/glint360k_r100.py

Same stages as g2d_base.py; the optional `finetune` stage uses CosFace like the teacher.
"""
from easydict import EasyDict as edict

config = edict()
config.margin_list = (1.0, 0.0, 0.4)
config.network = "g2d"
config.resume = False
config.output = None
config.embedding_size = 512
config.sample_rate = 1.0
config.fp16 = True
config.momentum = 0.9
config.batch_size = 128
config.lr = 0.1
config.verbose = 2000
config.dali = False

config.rec = "/train_tmp/glint360k"
config.num_classes = 360232
config.num_image = 17091657
config.num_epoch = 20
config.warmup_epoch = 0
config.val_targets = ["lfw", "cfp_fp", "agedb_30"]

# G2D-only keys (arcface_torch ignores them)
config.teacher = dict(network="r100", checkpoint="glint360k_cosface_r100_fp16_0.1/backbone.pth")
config.stages = [
    dict(name="inpaint", epochs=1),
    dict(name="reform", epochs=10),
    dict(name="classify", epochs=1),
]
