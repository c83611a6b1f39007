"""Domain errors. Each carries the HTTP status it becomes; `api/errors.py` turns them into
`{"error": ...}` responses in one place. `StartupError` and `UserError` are for the command
line: one line, non-zero exit, no traceback."""


class ServingError(Exception):
    """A request the server refuses; `status_code` is what the client gets, with `headers`."""

    status_code = 500

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers


class Unauthorized(ServingError):
    """No token, or one the server does not accept."""

    status_code = 401

    def __init__(self, message: str) -> None:
        super().__init__(message, {"WWW-Authenticate": 'Bearer realm="model"'})


class Forbidden(ServingError):
    status_code = 403


class TooManyRequests(ServingError):
    status_code = 429

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message, {"Retry-After": str(int(retry_after))})


class MalformedRequest(ServingError):
    status_code = 400


class ModelNotFound(ServingError):
    status_code = 404


class PayloadTooLarge(ServingError):
    status_code = 413


class UnsupportedEncoding(ServingError):
    status_code = 415


class ReloadRefused(ServingError):
    """The source's new model version did not pass the checks; the old one keeps serving."""

    status_code = 409


class InvalidInput(ServingError):
    status_code = 422


class PredictionFailed(ServingError):
    status_code = 500


class NotReady(ServingError):
    status_code = 503


class StartupError(Exception):
    """The configuration or the model cannot be served; the message names the cause."""


class UserError(Exception):
    """A command-line mistake (bad name, missing chart, no cluster): one line, exit 1."""


def as_sent(value: object) -> str:
    """A value in an error message as the client sent it, in JSON: `null`, `true`, `"31"`,
    `99999999999999999999` (never Python's `None`, `True`, `'31'` or `1e+20`)."""
    import json

    if hasattr(value, "item"):  # a numpy scalar
        value = value.item()
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return json.dumps(value)
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return json.dumps(str(value), ensure_ascii=False)
