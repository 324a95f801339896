"""Rendering: planning (``plan``), seeds, the manifest, grids, and the generation engine.

``plan`` validates and lists the images to make without loading a model; ``batch`` is the step
a local run (``local``) and a Ray actor (``ray_runner``) share; ``run`` hands a plan to either.
Submodules import torch and diffusers only where they need them; this package imports nothing.
"""
