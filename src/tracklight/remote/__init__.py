"""Run folders on object stores (``s3://``, ``gs://``, ``memory://``, any fsspec URL) for CSV and TensorBoard.

A logger whose ``save_dir`` is a URL writes its run into a local staging folder, exactly as a local
run, and a background thread uploads it (``_run``, ``_mirror``); versions are listed and claimed in
the store (``_versions``); URLs are opened through fsspec with errors that name the package to install
(``_store``). fsspec is imported only when a URL is used.

``python -m tracklight.remote push <staging folder>`` uploads what a run could not upload itself.
"""

from tracklight.remote._store import is_url

__all__ = ["is_url"]
