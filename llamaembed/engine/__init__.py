"""Running llama.cpp: the native wrappers, ``Llama``, pooling and text normalisation.

``_native`` is the only module that calls llama.cpp's C API. Modules here may import
``llamaembed.errors``, ``llamaembed.params`` and each other; ``Llama.from_pretrained``
reaches ``llamaembed.hub`` lazily. Nothing here imports ``store``, ``serve`` or the CLI.
"""
