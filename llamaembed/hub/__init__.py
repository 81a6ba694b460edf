"""The model catalogue (models.toml) and model files: cache, downloads, the offline default.

May import ``llamaembed.errors``, ``llamaembed.params``, ``llamaembed._files`` and, to build
the packaged default model, ``llamaembed.convert``.
"""
