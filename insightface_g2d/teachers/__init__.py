"""What turns a face model into distillation targets: embedding caches, target geometry, lookups.

The models themselves (PyTorch networks, ONNX, dlib, a stage of the run) are face embedders
(`insightface_g2d.embedders`); `embedders.factory.build_teacher` builds any of them, or a cache,
from config.teacher.
"""
from .cache import TeacherCache, build_teacher_cache, import_embeddings
from .targets import teacher_targets

__all__ = ["TeacherCache", "build_teacher_cache", "import_embeddings", "teacher_targets"]
