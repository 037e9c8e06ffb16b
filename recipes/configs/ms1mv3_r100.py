"""G2D on MS1MV3 (arcface_torch's ms1m-retinaface-t1) with its ArcFace r100 as the teacher.

    torchrun --nproc_per_node 8 -m insightface_g2d.cli.train recipes/configs/ms1mv3_r100.py

Teacher: the released arcface_torch checkpoint ms1mv3_arcface_r100_fp16/backbone.pth (download it
from the insightface model zoo and put it where `teacher.checkpoint` points, or --set it).
G2D starts from the teacher itself (see the end of this file).
"""
from easydict import EasyDict as edict

config = edict()
config.margin_list = (1.0, 0.5, 0.0)
config.resume = False
config.output = None
config.embedding_size = 512
config.sample_rate = 1.0
config.fp16 = True
config.momentum = 0.9
config.weight_decay = 5e-4
config.batch_size = 128
config.lr = 0.1
config.verbose = 2000
config.dali = False

config.rec = "/train_tmp/ms1m-retinaface-t1"
config.num_classes = 93431
config.num_image = 5179510
config.num_epoch = 20
config.warmup_epoch = 0
config.val_targets = ["lfw", "cfp_fp", "agedb_30"]

# G2D-only keys (arcface_torch ignores them)
config.teacher = dict(network="r100", checkpoint="ms1mv3_arcface_r100_fp16/backbone.pth")

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
