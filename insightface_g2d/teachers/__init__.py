"""Teachers for the distillation stages: frozen PyTorch nets, ONNX models, and embedding caches."""
from .cache import TeacherCache, build_teacher_cache, import_embeddings
from .factory import build_teacher, teacher_targets
from .onnx_teacher import OnnxTeacher
from .torch_teacher import TorchTeacher

__all__ = [
    "OnnxTeacher", "TeacherCache", "TorchTeacher", "build_teacher", "build_teacher_cache", "import_embeddings",
    "teacher_targets",
]
