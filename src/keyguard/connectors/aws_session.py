"""boto3 clients for one ``aws`` connector, and the one place AWS errors become keyguard's."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import boto3  # type: ignore[import-untyped]
import botocore.config  # type: ignore[import-untyped]
import botocore.exceptions  # type: ignore[import-untyped]

from keyguard.connectors.config import ConnectorConfig, SecretSource
from keyguard.connectors.errors import (
    ConnectorConfigError,
    MissingPermissionError,
    UnknownReferenceError,
    UnreachableError,
)
from keyguard.connectors.secret import Secret, scrub
from keyguard.errors import KeyguardError, RefusedError

T = TypeVar("T")

DENIED = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "403"})
NOT_FOUND = frozenset({"NoSuchEntity", "NotFoundException", "ResourceNotFoundException", "NoSuchBucket", "NoSuchKey"})
#: Codes that mean "this credential is not accepted" (the proof of a dead key).
CREDENTIAL_REFUSED = frozenset({
    "InvalidClientTokenId", "SignatureDoesNotMatch", "InvalidAccessKeyId", "UnrecognizedClientException",
    "AuthFailure", "ExpiredToken", "InvalidToken", "403", "AccessDenied", "AccessDeniedException",
})
UNIMPLEMENTED = frozenset({"NotImplemented", "InvalidAction", "UnknownOperationException", "501", "404"})


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ClientError ('' for anything else)."""
    if isinstance(exc, botocore.exceptions.ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


class AwsSession:
    """Clients built from the connector's settings; credentials from ``*_env`` or the sealed store."""

    def __init__(
        self, config: ConnectorConfig, *, environ: Mapping[str, str] | None = None, source: SecretSource | None = None
    ) -> None:
        self.name = config.name
        self.endpoint_url = config.get("endpoint_url")
        self.region = config.get("region") or "us-east-1"
        self.trail_bucket = config.get("cloudtrail_bucket")
        self.trail_prefix = config.get("cloudtrail_prefix") or ""
        self._timeout = config.timeout()
        self._key_id = config.credential("access_key_id", environ=environ, source=source)
        self._secret = config.credential("secret_access_key", environ=environ, source=source)
        self._token = config.credential("session_token", environ=environ, source=source)
        if (self._key_id is None) != (self._secret is None):
            raise ConnectorConfigError(
                f"connector {self.name!r}: give both access_key_id_env and secret_access_key_env")
        self._clients: dict[str, Any] = {}
        self._boto = boto3.session.Session()  # one session: service models are loaded once

    @property
    def secrets(self) -> tuple[Secret | None, ...]:
        """The connector's own credentials (to scrub from any text)."""
        return (self._key_id, self._secret, self._token)

    def _botocore_config(self) -> Any:
        return botocore.config.Config(
            connect_timeout=self._timeout, read_timeout=self._timeout, retries={"max_attempts": 2, "mode": "standard"}
        )

    def client(self, service: str) -> Any:
        """A cached client for ``service`` with the connector's identity."""
        if service not in self._clients:
            kwargs: dict[str, Any] = {}
            if self._key_id is not None and self._secret is not None:
                kwargs = {"aws_access_key_id": self._key_id.reveal(), "aws_secret_access_key": self._secret.reveal()}
                if self._token is not None:
                    kwargs["aws_session_token"] = self._token.reveal()
            self._clients[service] = self._boto.client(
                service, endpoint_url=self.endpoint_url, region_name=self.region, config=self._botocore_config(),
                **kwargs,
            )
        return self._clients[service]

    def client_as(self, service: str, access_key_id: str, secret: Secret) -> Any:
        """A client signed with another pair (the leaked one, to prove it dead); no retries."""
        return self._boto.client(
            service, endpoint_url=self.endpoint_url, region_name=self.region,
            aws_access_key_id=access_key_id, aws_secret_access_key=secret.reveal(),
            config=botocore.config.Config(
                connect_timeout=self._timeout, read_timeout=self._timeout, retries={"max_attempts": 1}
            ),
        )

    def call(self, action: str, fn: Callable[..., T], /, *args: Any, ref: str | None = None, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)``; ``action`` is ``service:Operation`` and names a missing permission."""
        try:
            return fn(*args, **kwargs)
        except botocore.exceptions.ClientError as exc:
            raise self.translate(exc, action, ref) from None
        except (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectTimeoutError,
                botocore.exceptions.ReadTimeoutError, botocore.exceptions.ConnectionClosedError) as exc:
            raise UnreachableError(self.name, self.endpoint_url or f"AWS {self.region}", type(exc).__name__) from None
        except botocore.exceptions.NoCredentialsError:
            raise ConnectorConfigError(
                f"connector {self.name!r} has no AWS credentials",
                hint="set access_key_id_env and secret_access_key_env in keyguard.toml",
            ) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise KeyguardError(scrub(f"connector {self.name!r}: {action} failed: {type(exc).__name__}",
                                      self.secrets)) from None

    def translate(self, exc: BaseException, action: str, ref: str | None) -> KeyguardError:
        """A ClientError as one clear keyguard error (built from its code, never its text)."""
        code = error_code(exc)
        if code in DENIED:
            return MissingPermissionError(self.name, action)
        if code in NOT_FOUND:
            return UnknownReferenceError(f"{ref or action}: not found on connector {self.name!r}",
                                         hint=f"AWS said {code}")
        if code in {"InvalidClientTokenId", "SignatureDoesNotMatch", "UnrecognizedClientException",
                    "InvalidAccessKeyId", "ExpiredToken"}:
            return RefusedError(f"connector {self.name!r}: AWS refused the connector's own credentials ({code})",
                                hint="check access_key_id_env / secret_access_key_env")
        return KeyguardError(f"connector {self.name!r}: {action} failed ({code or 'error'})")
