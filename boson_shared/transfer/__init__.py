"""The sender and receiver sides of the data plane, shared by clients and executors.

* :mod:`~boson_shared.transfer.chunks` — how a blob is cut into chunks and how a
  chunk's bytes travel (as they are, or one fast zstd frame);
* :mod:`~boson_shared.transfer.uploader` — ask the store first, send only missing
  chunks, wait for ``DataStored``;
* :mod:`~boson_shared.transfer.fetcher` — ``FetchData`` → reassembled, verified
  bytes, with a bounded cache;
* :mod:`~boson_shared.transfer.replies` — routes the data plane's replies arriving on
  a client's (or node's) reply queue to whoever waits for them.
"""
