"""Which earlier stages' outputs a finished stage was trained from, and the stages that no longer match them.

A stage trains from what the stages before it left: their stage files (`stage_<name>.pt`) are
loaded in order, so a later stage's file holds the earlier modules it was trained with (a frozen
encoder, a teacher network). Every stage file records under "inputs" the SHA-256 checksum of each
earlier stage's file when it started (None for a stage that had not run). A finished stage is
stale when an earlier stage trains in this run, is itself stale, or is finished with a file other
than the one recorded: reusing it would put modules of two different trainings into model.pt (e.g.
the random encoder a reform stage was trained on, instead of the one inpaint just trained). The run
refuses before training anything and names the files to delete (see preflight.check_stale_stages).
Stage files written before inputs were recorded are only checked against stages that train now.
"""


def stage_inputs(stages, index, outputs):
    """{earlier stage name: checksum of its stage file or None} for stage `index` of `stages`;
    outputs: {name: checksum} of the stage files finished so far."""
    return {s.name: outputs.get(s.name) for s in stages[:index]}


def stale_stages(stages, finished, training):
    """[(stage name, reason)] of the finished stages that no longer match the stages before them.

    finished: {name: (checksum, inputs or None)} of every stage whose file exists now; training:
    names of the stages this run trains. Stages are visited in order: a stale stage makes the
    finished ones after it stale too (it will train again).
    """
    changing = set(training)
    out = []
    for index, stage in enumerate(stages):
        if stage.name not in finished:
            continue
        inputs = finished[stage.name][1]
        reason = None
        for earlier in stages[:index]:
            recorded = None if inputs is None else inputs.get(earlier.name)
            if earlier.name in training:
                reason = (f"{stage.name} was trained before {earlier.name} had run, and {earlier.name} trains now"
                          if inputs is not None and recorded is None else f"{earlier.name} trains again in this run")
            elif earlier.name in changing:
                reason = f"it was trained from {earlier.name}, which is stale"
            elif inputs is not None and earlier.name in finished and recorded != finished[earlier.name][0]:
                reason = (f"{earlier.name} had not run when {stage.name} was trained" if recorded is None
                          else f"stage_{earlier.name}.pt is not the file {stage.name} was trained from")
            if reason:
                break
        if reason:
            out.append((stage.name, reason))
            changing.add(stage.name)
    return out
