"""Gaps: the ``Gap`` value, names and refs, the estimators' maths, shifting and comparing.

The package itself imports nothing: the registry (which never imports torch) reads
``doge.names`` and ``doge.gaps.shifting`` without pulling in the torch-backed modules.
"""
