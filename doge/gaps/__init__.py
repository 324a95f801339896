"""Gaps: the ``Gap`` value, making one (``extract``), storing and loading it (``store``), the
estimators' maths, shifting, comparing and explaining.

The package itself imports nothing. The registry (which never imports torch) needs none of it:
the names of a gap's extra tensors live in the base module ``doge.extras``.
"""
