"""Images in: discovering and decoding them, the encoder protocol, batched streamed encoding.

The package itself imports nothing, so naming it stays cheap (no torch, no numpy).
"""
