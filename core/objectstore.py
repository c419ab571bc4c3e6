"""The object store location (an S3 endpoint) as boto3 and pyarrow clients.

Every wing gets its S3 clients here, so endpoint, credentials, path-style addressing and
checksum behaviour are decided once. Checksums are sent only where the S3 API requires them
(``when_required``): the local endpoint (s3proxy) does not implement the newer
``x-amz-checksum-*`` trailers that recent SDKs add by default.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.settings import StackSettings

if TYPE_CHECKING:
    import pyarrow.fs


def s3_client(settings: StackSettings, *, timeout_s: float = 10.0, attempts: int = 3) -> Any:
    """A boto3 S3 client for the configured endpoint."""
    import boto3
    from botocore.config import Config

    s3 = settings.s3
    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint,
        region_name=s3.region,
        aws_access_key_id=s3.access_key,
        aws_secret_access_key=s3.secret_key.get_secret_value(),
        config=Config(
            connect_timeout=min(timeout_s, 5.0),
            read_timeout=timeout_s,
            retries={"max_attempts": attempts, "mode": "standard"},
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def arrow_fs(settings: StackSettings) -> pyarrow.fs.S3FileSystem:
    """A pyarrow filesystem on the endpoint; paths are ``bucket/key`` (no scheme)."""
    from pyarrow import fs

    s3 = settings.s3
    return fs.S3FileSystem(
        endpoint_override=settings.s3_endpoint,
        scheme="http" if settings.s3_endpoint.startswith("http://") else "https",
        access_key=s3.access_key,
        secret_key=s3.secret_key.get_secret_value(),
        region=s3.region,
        connect_timeout=5,
        request_timeout=30,
    )


def client_env(settings: StackSettings) -> dict[str, str]:
    """Environment for boto3-based tools run as subprocesses (MLflow's server and clients)."""
    s3 = settings.s3
    return {
        "MLFLOW_S3_ENDPOINT_URL": settings.s3_endpoint,
        "AWS_ACCESS_KEY_ID": s3.access_key,
        "AWS_SECRET_ACCESS_KEY": s3.secret_key.get_secret_value(),
        "AWS_DEFAULT_REGION": s3.region,
        "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
        "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required",
    }
