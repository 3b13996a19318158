"""Template tags of diffmig."""
