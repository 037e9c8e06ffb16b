"""Where a distilling stage compares the student's embeddings with the teacher's targets.

`student_geometry` (a key of the reform and distill kinds):
  none     the student's embeddings as they are, against the targets (which carry the teacher's
           geometry, teachers/geometry.py): a student that learns its own embedding space
  teacher  the student's embeddings through the teacher's geometry too (its mean subtracted): for
           a student that starts as the teacher or a part of it (config.init), whose raw output is
           the teacher's own embedding, so that it matches the targets at step 0
"""
from ...errors import ConfigError, suggest

STUDENT_GEOMETRIES = ("none", "teacher")


def check_student_geometry(spec):
    value = spec.get("student_geometry")
    if value not in STUDENT_GEOMETRIES:
        raise ConfigError(f"stage {spec['name']!r}: student_geometry must be one of {', '.join(STUDENT_GEOMETRIES)}, "
                          f"got {value!r}{suggest(str(value), STUDENT_GEOMETRIES)}")


def student_embeddings(embeddings, spec, ctx):
    """The student's embeddings in the space the distillation terms compare them in."""
    return ctx.teacher_geometry(embeddings) if spec.student_geometry == "teacher" else embeddings
