"""A batch's teacher targets, from any teacher: a cache lookup or a live embedder."""
from ..errors import DataError


def teacher_targets(teacher, batch):
    """The teacher embeddings of a MaskedPairDataset batch: N x D float32 on the batch's device.

    A TeacherCache looks them up by batch["index"] and batch["flipped"] (the clean face's mirror
    state, required: a wrong guess would silently pair faces with the other side's embedding);
    any other teacher embeds batch["clean"].
    """
    if hasattr(teacher, "lookup"):
        if "flipped" not in batch:
            raise DataError(
                "the batch has no 'flipped' entry: a teacher cache needs to know which faces were mirrored "
                "(MaskedPairDataset items carry it); use a live teacher or a dataset that provides it"
            )
        device = batch["clean"].device if "clean" in batch else batch["index"].device
        return teacher.lookup(batch["index"], batch["flipped"], device=device)
    return teacher.embed(batch["clean"])
