"""Judging gaps: transfer to held-out target images, stability, the evaluation record and its plot."""
