"""Photos in, aligned faces out: the face finders (`finders.FACE_FINDERS`; the kit's masked-face
front end is the default), their training, and aligning whole folders of photos."""
