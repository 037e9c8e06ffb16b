"""Aligned faces as training data: RecordIO, image folders and the built-in synthetic faces, the
ArcFace template every aligned face is defined by (`align.py`), and the conversions to tensors.
Finding faces in photos lives in `faces/`, drawing masks on them in `masks/`."""
