"""Past one machine: embedding Ray Datasets and the Parquet handoff they produce.

``parquet`` holds the file format (an ``embedding`` FixedSizeList<float32> column, the
model recorded in the file's metadata) and needs only pyarrow; ``ray`` holds the Ray Data
actor class and ``embed_dataset``, importing Ray only when called.

May import ``llamaembed.errors``, ``llamaembed.params``, ``llamaembed.hub.spec`` and, to open
models inside actors, the engine and the static tier.
"""
