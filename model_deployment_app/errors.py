"""Domain errors. Each carries the HTTP status it becomes; `api/errors.py` turns them into
`{"error": ...}` responses in one place. `StartupError` and `UserError` are for the command
line: one line, non-zero exit, no traceback."""


class ServingError(Exception):
    """A request the server refuses; `status_code` is what the client gets."""

    status_code = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


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
