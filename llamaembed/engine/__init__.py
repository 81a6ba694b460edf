"""Running llama.cpp: the native wrappers, ``Llama``, its inputs, pooling and hardware rules.

``_native`` (the library, its log and facts) and ``_handles`` (a model, a context, a batch)
are the only modules that call llama.cpp's C API. ``layout`` decides how a GGUF runs
(pooling, context, micro-batches), ``inputs`` checks and fits what callers hand in,
``pairs`` builds a cross-encoder's inputs, ``hardware`` holds the weight-type rules,
``probe`` (with its child process, ``probe_child``, which builds its tiny model with
``llamaembed.conversion``) tests the AMX kernels and ``system``
gathers the live facts. Modules here may import ``llamaembed.errors``,
``llamaembed.params``, the embedder contract and each other; ``Llama`` reaches
``llamaembed.hub`` lazily (``from_pretrained``, ``spec``). Nothing here imports
``store``, ``serve`` or the CLI.
"""
