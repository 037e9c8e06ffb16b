"""G2D at the paper's scale: CASIA-WebFace (arcface_torch's faces_webface_112x112, 10,572 people).

    torchrun --nproc_per_node 4 -m insightface_g2d.cli.train recipes/configs/casia_webface.py

The paper trains on CASIA-WebFace with synthetic masks and starts stage 1 from a pretrained
inpainting network (ICT; lr 1e-5, batch 16). Those weights are not available, so `inpaint` trains
from scratch here, longer and at a higher learning rate; the lengths below are our choice for a
dataset of this size (about 0.5M images), not the paper's.
"""
from easydict import EasyDict as edict

config = edict()
config.margin_list = (1.0, 0.5, 0.0)
config.network = "g2d"
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

config.rec = "/train_tmp/faces_webface_112x112"
config.num_classes = 10572
config.num_image = 490623
config.num_epoch = 34
config.warmup_epoch = 0
config.val_targets = ["lfw", "cfp_fp", "agedb_30"]

# G2D-only keys (arcface_torch ignores them)
config.teacher = dict(network="r100", checkpoint="ms1mv3_arcface_r100_fp16/backbone.pth")
config.stages = [
    dict(name="inpaint", epochs=10, batch_size=64),
    dict(name="reform", epochs=34),
    dict(name="classify", epochs=5),
]
