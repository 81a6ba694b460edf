"""Models: the catalogue (models.toml), model files and picklable model descriptions.

``registry`` resolves names to files (cache, downloads, the offline default); ``spec``
holds ``ModelSpec``, which the server and the Ray actors open.

May import ``llamaembed.errors``, ``llamaembed.params``, ``llamaembed._files`` and, to build
the packaged default model, ``llamaembed.conversion``; ``ModelSpec.open`` imports the engine
and the static tier when called.
"""
