"""The token file: UTF-8, comments skipped, and no token kept in memory as it is."""

from pathlib import Path

from model_deployment_app.tokens import TokenFile


def test_tokens_are_kept_only_as_digests_once_accepted(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("# a comment, not a token\nalpha-token\nclé-token\n", encoding="utf-8")
    tokens = TokenFile(str(path), "MDA_API_TOKENS_FILE")
    for _ in range(2):  # the second time from the remembered ones
        assert tokens.accepts("alpha-token") and tokens.accepts("clé-token")
    assert not tokens.accepts("# a comment, not a token")
    assert not tokens.accepts("wrong")
    held = repr(vars(tokens))
    assert "alpha-token" not in held and "clé-token" not in held
    assert all(isinstance(d, bytes) and len(d) == 32 for d in tokens._accepted)
