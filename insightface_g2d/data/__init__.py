"""Everything between a file on disk and a training batch."""
