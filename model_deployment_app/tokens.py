"""Bearer tokens from a file (a mounted Secret): one token a line, re-read when it changes.

Kubernetes updates a mounted Secret in place (a new file behind the same path), so a token
is added or revoked without a restart. Tokens are kept only as SHA-256 digests (the file's
and the ones already accepted alike), the file's compared in constant time, and never logged.
The file is UTF-8, one token a line; blank lines and lines starting with `#` are skipped.
"""

import hashlib
import hmac
import logging
import os
import time
from pathlib import Path

from model_deployment_app.errors import StartupError

log = logging.getLogger(__name__)

# How often the file is looked at (a stat), at most: a change is honoured within this.
RECHECK_SECONDS = 1.0
# Digests of tokens already found good are remembered (until the file changes), so a
# client's every call is one digest and one set look-up (a hash look-up of a digest tells
# nothing about how near a guess is); a token never accepted is checked in full every time.
REMEMBERED = 1024


def digest(token: str) -> bytes:
    """A token's SHA-256: all that is kept of it, here and in the rate limiter's counts."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class TokenFile:
    def __init__(self, path: str, setting: str) -> None:
        self.path = Path(path)
        self.setting = setting
        self._digests: tuple[bytes, ...] = ()
        self._stamp: tuple[int, int, int] | None = None
        self._checked = 0.0
        self._unreadable = False
        self._accepted: set[bytes] = set()
        if not self._reload():
            raise StartupError(f"{setting}: cannot read the token file {path}")

    def _reload(self) -> bool:
        """Read the file again if it changed; False when it cannot be read."""
        try:
            stat = os.stat(self.path)
            stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
            if stamp == self._stamp:
                return True
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as error:
            if self._stamp is not None and not self._unreadable:  # once, until it is back
                log.warning("cannot read %s (%s): keeping the tokens read before", self.path,
                            type(error).__name__)  # fmt: skip
            self._unreadable = True
            return False
        tokens = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
        self._digests = tuple(digest(token) for token in tokens)
        self._accepted = set()  # a revoked token must be checked again
        if self._stamp is not None:
            log.info("%s changed: %d token(s) now accepted", self.setting, len(tokens))
        elif not tokens:
            log.warning("%s names a file with no tokens: every call is refused", self.setting)
        self._stamp, self._unreadable = stamp, False
        return True

    def accepts(self, token: str) -> bool:
        """Whether `token` is one of the file's, in time that does not depend on which."""
        now = time.monotonic()
        if now - self._checked >= RECHECK_SECONDS:
            self._checked = now
            self._reload()
        presented = digest(token)
        if presented in self._accepted:
            return True
        found = False
        for known in self._digests:
            found |= hmac.compare_digest(known, presented)
        if found:
            if len(self._accepted) >= REMEMBERED:
                self._accepted.clear()
            self._accepted.add(presented)
        return found
