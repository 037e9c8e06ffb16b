"""G2D on Glint360K with the arcface_torch CosFace r100 (glint360k_cosface_r100_fp16_0.1) as teacher.

    torchrun --nproc_per_node 8 -m insightface_g2d.cli.train recipes/configs/glint360k_r100.py

G2D starts from the teacher itself (see the end of this file); CosFace margins like the teacher.
"""
from easydict import EasyDict as edict

config = edict()
config.margin_list = (1.0, 0.0, 0.4)
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

# G2D cut from the teacher's own r100 after layer2 (G2D's 128 x 28 x 28 descriptor), both halves
# starting from the teacher's weights (init = "teacher": teacher.checkpoint). The encoder stays
# frozen; the reformer learns by relational distillation, the teacher seeing the clean face and the
# student the masked one, with a small learning rate that keeps what the teacher knows (the recipe
# that beat its teacher on masked LFW faces, docs/real_faces.md). From scratch instead:
# --set network=g2d --set init=None --set stages=... (g2d_base.py's inpaint/reform/classify).
config.network = "g2d_r100"
config.init = "teacher"
config.stages = [
    dict(name="reform", epochs=2, optimizer="adamw", lr=5e-5, weight_decay=5e-4, warmup_epochs=0.05,
         student_geometry="teacher", masks=dict(prob=0.75)),
    dict(name="classify", epochs=1),
]
