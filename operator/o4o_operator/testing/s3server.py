"""A real S3-compatible server for the test world: the Versity S3 Gateway (``versitygw posix``) on a free port.

Owns: starting ``versitygw`` (objects as files in a work directory, metadata in extended attributes) with one
root identity whose access key pair it makes up (handed over in its environment, never in argv) and its internal
IAM (``--iam-dir``), waiting until it answers a signed request, making buckets, making a user that owns exactly
one bucket (:meth:`S3Server.bucket_user`, through the gateway's admin API, signed like S3: the new secret travels
in the request body, not in any argv), and stopping it. The gateway verifies SigV4, presigned URLs and
their expiry included, so what the operator hands a host is tested for real.
Must not: be imported by shipped code, or listen beyond ``listen_host``.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
import urllib.parse
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3  # type: ignore[import-untyped,unused-ignore]
import botocore.auth  # type: ignore[import-untyped,unused-ignore]
import botocore.awsrequest  # type: ignore[import-untyped,unused-ignore]
import botocore.config  # type: ignore[import-untyped,unused-ignore]
import botocore.credentials  # type: ignore[import-untyped,unused-ignore]
import botocore.exceptions  # type: ignore[import-untyped,unused-ignore]

from o4o_operator.testing.processes import free_port, log_tail, start_process, stop_process
from o4o_operator.testing.s3bin import BINARY, ensure_s3_server

READY_TIMEOUT = 60.0
STOP_GRACE_SECONDS = 2.0
"""The gateway's data is the test's own, so a slow shutdown is cut short."""


class S3ServerError(RuntimeError):
    """The S3 server did not start (its log's tail is in the message)."""


class S3Server:
    """``with S3Server(workdir) as s3:`` -> ``s3.endpoint``, ``s3.access_key_id``, ``s3.secret_access_key``."""

    def __init__(self, workdir: Path, *, listen_host: str = "127.0.0.1") -> None:
        self.workdir = workdir
        self.listen_host = listen_host
        self.access_key_id = "O4OTEST" + secrets.token_hex(7).upper()[:13]  # 20 characters, as AWS's (and Lightsail's)
        self.secret_access_key = secrets.token_urlsafe(24)
        self.port = 0
        self.log_path = workdir / "versitygw.log"
        self._process: Any = None
        self._client: Any = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.listen_host}:{self.port}"

    def client(self) -> Any:
        """A boto3 S3 client with the server's own identity (for setting up and inspecting tests): one per server,
        closed when the server stops (a client dropped with its kept-alive connections open leaves sockets for
        the garbage collector, whose ResourceWarning then fails whichever test is running)."""
        if self._client is None:
            config = botocore.config.Config(s3={"addressing_style": "path"}, signature_version="s3v4",
                                            retries={"mode": "standard", "total_max_attempts": 2})
            self._client = boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1", config=config,
                                        aws_access_key_id=self.access_key_id,
                                        aws_secret_access_key=self.secret_access_key)
        return self._client

    def start(self) -> S3Server:
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        self.port = free_port(self.listen_host)
        environment = {**os.environ, "ROOT_ACCESS_KEY": self.access_key_id,
                       "ROOT_SECRET_KEY": self.secret_access_key}
        self._process = start_process([
            str(ensure_s3_server() / BINARY), "--port", f"{self.listen_host}:{self.port}", "--region", "us-east-1",
            "--iam-dir", str(self._iam_dir()), "--quiet", "posix", str(data),
        ], self.log_path, env=environment)
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_ready(self) -> None:
        """Poll a signed ListBuckets (a readiness probe, not a sleep) until it answers, or the process died."""
        client = self.client()
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise S3ServerError(f"versitygw exited with {self._process.returncode}:\n{log_tail(self.log_path)}")
            try:
                client.list_buckets()
                return
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
                time.sleep(0.1)
        raise S3ServerError(f"versitygw was not ready within {READY_TIMEOUT:.0f}s:\n"
                            f"{log_tail(self.log_path)}")

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def _iam_dir(self) -> Path:
        directory = self.workdir / "iam"
        directory.mkdir(parents=True, exist_ok=True)
        return directory

    def _admin(self, path: str, query: dict[str, str] | None = None, body: bytes = b"") -> None:
        """One call of the gateway's admin API (``PATCH``), SigV4-signed with the root identity."""
        url = f"{self.endpoint}{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        request = botocore.awsrequest.AWSRequest(method="PATCH", url=url, data=body, headers={
            "X-Amz-Content-Sha256": hashlib.sha256(body).hexdigest()})
        credentials = botocore.credentials.Credentials(self.access_key_id, self.secret_access_key)
        botocore.auth.SigV4Auth(credentials, "s3", "us-east-1").add_auth(request)
        prepared = request.prepare()
        with urllib.request.urlopen(urllib.request.Request(  # noqa: S310 - the gateway on loopback
                prepared.url, data=body, method="PATCH", headers=dict(prepared.headers)), timeout=10):
            pass

    def bucket_user(self, bucket: str) -> tuple[str, str]:
        """A new user of role ``user`` that owns ``bucket`` (and so reaches it, and no bucket it does not own):
        its (access key id, secret access key), 20 characters of id as AWS's."""
        access = "O4OB" + secrets.token_hex(8).upper()
        secret = secrets.token_urlsafe(30)
        account = (f"<Account><Access>{access}</Access><Secret>{secret}</Secret><Role>user</Role>"
                   "<UserID>0</UserID><GroupID>0</GroupID><ProjectID>0</ProjectID></Account>")
        self._admin("/create-user", body=account.encode())
        self._admin("/change-bucket-owner/", {"bucket": bucket, "owner": access})
        return access, secret

    def delete_user(self, access_key_id: str) -> None:
        self._admin("/delete-user", {"access": access_key_id})

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every key under ``prefix`` (what a test checks the bucket holds)."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", ()))

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._process is not None:
            stop_process(self._process, grace_seconds=STOP_GRACE_SECONDS)
            self._process = None

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()
