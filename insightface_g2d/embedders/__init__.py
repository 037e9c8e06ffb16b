"""Face embedders: every face model this project runs -- a teacher of the distillation stages and a
model under evaluation alike -- behind one interface (`base.FaceEmbedder`).

    base.py          FaceEmbedder: embed(faces, flip=...), embed_images (batching), dim
    registry.py      EMBEDDER_TYPES: spec key -> class, the one list of model / teacher types
    factory.py       specs (strings and dicts) -> objects: build_teacher, build_embedder, check_spec
    torch_network.py "network" (TorchNetwork): a get_model network + checkpoint; TorchEmbedder wraps any nn.Module
    onnx_model.py    "onnx": an ONNX model on onnxruntime
    dlib_resnet.py   "dlib": dlib's ResNet (the [dlib] extra)
    run_stage.py     "stage": the network a stage of this training run trained
(and "cache": teachers.cache.TeacherCache, precomputed teacher embeddings). docs/architecture.md
"Add a teacher type" says how to add one.
"""
