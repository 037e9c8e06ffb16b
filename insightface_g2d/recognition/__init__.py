"""Using a trained model: photos in, faces, same-person decisions and gallery searches out.

    recognizer.py     FaceRecognizer: front end + alignment + model + thresholds
    photos.py         photos as paths, numpy arrays (RGB, or BGR with bgr=True) or PIL images
    results.py        Face, FaceList, Verification, Match, SearchResult
    gallery.py        enrolled faces saved as .npz
    model_source.py   which model (run folder, model.pt, spec) and its thresholds file
"""
from .recognizer import DEFAULT_THRESHOLD, FaceRecognizer

__all__ = ["DEFAULT_THRESHOLD", "FaceRecognizer"]
