"""G2D defaults: arcface_torch's base keys plus the G2D recipe (stages, teacher, masks, eval).

A job file next to this one (demo.py, ms1mv3_r100.py, ...) sets only what differs; `g2d-train`
runs this file, then the job file, and merges them (see insightface_g2d/training/config.py).
Job files stay plain arcface_torch configs: copied into arcface_torch's configs/ folder they load
with its utils_config.get_config, which ignores the G2D-only keys.

Configs are Python code and are executed when loaded: only load files you trust.
"""
from easydict import EasyDict as edict

config = edict()

# ---------------------------------------------------------------- arcface_torch's keys (same meaning)
config.margin_list = (1.0, 0.5, 0.0)   # ArcFace; (1.0, 0.0, 0.4) is CosFace (arcface/finetune stages)
config.network = "g2d"                  # the backbone model.pt holds: g2d, g2d_s, g2d_l, g2d_t (tiny) ...
config.resume = False                   # g2d-train always resumes automatically; a path here = --resume PATH
config.save_all_states = False
config.output = None                    # None: work_dirs/<job file name>
config.embedding_size = 512
config.sample_rate = 1.0                # Partial FC (arcface_torch only; G2D heads are full softmax)
config.interclass_filtering_threshold = 0.0
config.fp16 = False                     # mixed precision on CUDA (ignored on CPU)
config.amp_dtype = "float16"            # with fp16: "float16" (+ loss scaling) or "bfloat16" (Ampere and newer)
config.batch_size = 128                 # per process
config.optimizer = "sgd"                # default of stages that do not set their own
config.lr = 0.1
config.momentum = 0.9
config.weight_decay = 5e-4
config.verbose = 2000
config.frequent = 10                    # log every N steps
config.dali = False
config.dali_aug = False
config.gradient_acc = 1
config.seed = 2048
config.num_workers = 2
config.wandb_key = "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
config.suffix_run_name = None
config.using_wandb = False               # True is refused: g2d-train logs to scalars.csv / TensorBoard, not wandb
config.wandb_entity = "entity"
config.wandb_project = "project"
config.wandb_log_all = True
config.save_artifacts = False
config.wandb_resume = False

# ---------------------------------------------------------------- job keys (arcface_torch's job files)
config.rec = "synthetic"                # RecordIO folder / .rec / image folder / "synthetic:ids=..,per_id=.."
config.num_classes = None               # None: taken from the dataset
config.num_image = None
config.num_epoch = 20                   # length of arcface stages without their own epochs
config.warmup_epoch = 0.0
config.val_targets = []
config.skip_bad = False                 # True: unreadable records/images are replaced by the next good one (logged)

# ---------------------------------------------------------------- G2D
# The face recognizer distilled into the reformer (and used by the inpainting identity loss):
#   dict(network="r100", checkpoint=".../backbone.pth")   an arcface_torch checkpoint
#   dict(onnx="model.onnx")                                an ONNX model (no identity loss in inpaint)
#   dict(cache="teacher_cache/")                           embeddings from `g2d-cache build`
#   dict(dlib=True)                                        dlib's ResNet (pip install -e .[dlib]; slow: cache it)
#   dict(stage="baseline")                                 the network of this run's arcface stage
# geometry= (any of them): how embeddings become targets: "center" (default: subtract the teacher's
#   mean embedding, needed for teachers like dlib's whose embeddings are far from centred),
#   "whiten", "batch-center", "none" (see insightface_g2d/teachers/geometry.py)
config.init = None                      # start the network from a pretrained checkpoint: backbone.pth, model.pt,
                                        # "dlib", or "teacher" (the teacher's own weights); a whole network also
                                        # starts G2D cut from it (g2d_r100, g2d_dlib)
config.teacher = dict(network="r100", checkpoint=None)

# Synthetic masks drawn on the training faces (stages may override with masks=dict(...)).
config.masks = dict(prob=1.0, styles=None, positions=("normal", "high", "low"))

# Greedy, module-wise training. Each entry sets only the recipe's choices (length, batch size,
# warm-up, masks); everything else is its kind's default (optimizer, learning rate, loss weights,
# ...), written once in the settings of insightface_g2d/training/kinds/<kind>.py.
config.stages = [
    # 1. encoder + decoder (+ PatchGAN critic) restore the clean face from the masked one
    dict(name="inpaint", epochs=2, batch_size=64, warmup_steps=500, masks=dict(prob=1.0)),
    # 2. encoder frozen; reformer distils the teacher's relations (masked student, clean teacher)
    dict(name="reform", epochs=20, warmup_epochs=1, masks=dict(prob=0.75)),
    # 3. backbone frozen; FC + softmax over the training identities on masked and clean faces
    dict(name="classify", epochs=2, masks=dict(prob=1.0)),
    # optional, add to a job's stages: everything trainable with the margin head (margin_list)
    # dict(name="finetune", epochs=2),
]

config.cpu_threads = None               # torch threads on CPU (None: torch's default; --threads overrides)
config.checkpoint_every = 2000          # steps between step checkpoints (and on stop)
config.preview_every = 1000             # steps between inpainting preview PNGs

# Verification at the end of the run (the CPU demo turns it on).
config.eval = dict(
    enabled=False,
    pairs=None,                         # a .bin file or a dataset spec of held-out identities
    num_pairs=1000,                     # pairs drawn from a dataset spec (half genuine)
    protocols=("clean", "masked-masked", "masked-clean"),
    models=None,                        # {label: "model" | "stage:NAME" | "NETWORK:CHECKPOINT" | "x.onnx"}
    seed=0,
    batch_size=64,
    far=1e-2,                           # TAR@FAR reported in the table
    nfolds=10,
)
