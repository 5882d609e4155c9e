"""A real S3 API for the tests: moto's threaded server on 127.0.0.1, reached by s3fs like any S3 endpoint.

One server per test session (the ``s3`` fixture in conftest). Its address goes into the environment
(``AWS_ENDPOINT_URL`` with test credentials), which botocore reads, so s3fs clients in this process,
in child processes and TensorBoard's own S3 reader all reach it without any setting in the code under
test. The server can be stopped and started again on the same port (its buckets stay, as they live in
this process) to play a store that goes away for a while.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class S3Server:
    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        self._factory = ThreadedMotoServer
        self._server: Any = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, self.port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{self.port}"
        self.running = True

    @property
    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            # Tests reach no network: no instance-metadata look-up for credentials or region.
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def new_bucket(self) -> str:
        """A fresh, empty bucket; its ``s3://`` URL."""
        name = f"test-{uuid.uuid4().hex[:12]}"
        self.filesystem().mkdir(name)
        return f"s3://{name}"

    @staticmethod
    def filesystem() -> Any:
        """An s3fs filesystem of its own (no listing cached from an earlier look)."""
        import s3fs

        return s3fs.S3FileSystem(skip_instance_cache=True)

    def stop(self) -> None:
        self._server.stop()
        self.running = False

    def start(self) -> None:
        self._server = self._factory(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        self.running = True

    @contextmanager
    def down(self) -> Iterator[None]:
        """The store is unreachable inside the block and back after it, whatever happens inside."""
        self.stop()
        try:
            yield
        finally:
            self.start()


@contextmanager
def s3_environment() -> Iterator[S3Server]:
    server = S3Server()
    saved = {key: os.environ.get(key) for key in server.env}
    os.environ.update(server.env)
    try:
        yield server
    finally:
        if server.running:
            server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
