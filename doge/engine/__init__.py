"""The generation engine: Stable unCLIP img2img with optional ControlNet.

Submodules import torch and diffusers; this package itself imports nothing, so that
`import doge.engine` stays cheap for code that only needs to name things.
"""
