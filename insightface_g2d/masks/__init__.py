"""Synthetic masks on aligned faces: the mask styles (`styles.MASK_STYLES`), the synthesizer that
draws them fast and seeded, the real-photo degradation of a masked face, and the dataset of
(masked, clean) face pairs the G2D stages train on."""
