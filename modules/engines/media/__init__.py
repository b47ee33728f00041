"""Embeddings, moderations, images and audio: the models behind the API's media endpoints.

Nothing here imports torch, diffusers, faster-whisper or piper at import time; each model
imports what it needs on its own worker thread when it first loads (`runtime.py` sets the
native thread settings first). `MediaModels` (manager.py) is the one entry point.
"""
