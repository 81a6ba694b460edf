"""The static tier: Model2Vec-style embeddings (one vector per token, a text is their mean).

``model.py`` holds :class:`StaticModel`, which opens a Model2Vec folder (ours or any
other) and embeds with the ``tokenizers`` library, numpy and scipy only; ``distill.py``
makes such a folder from a GGUF teacher run in llama.cpp. ``model.py`` may import
``llamaembed.errors``, ``llamaembed._files``, ``llamaembed.engine.inputs`` and
``llamaembed.engine.pooling`` (pure functions); only ``distill.py`` opens llama.cpp
(through ``llamaembed.engine``).
"""
