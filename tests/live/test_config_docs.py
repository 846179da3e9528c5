"""The generated documents match LiveConfig: .env.template and the reference tables of
README.md and docs/live.md."""

from __future__ import annotations

from dataclasses import fields

import pytest

from live.config import LiveConfig
from live.config_docs import (
    REFERENCE_FILES,
    TEMPLATE_FILE,
    env_template,
    readme_with_reference,
    reference_markdown,
)


def test_committed_template_is_the_generated_one():
    assert TEMPLATE_FILE.read_text(encoding="utf-8") == env_template(), (
        "run: python -m live.config_docs --write"
    )


@pytest.mark.parametrize("document", REFERENCE_FILES, ids=lambda p: p.name)
def test_reference_tables_are_the_generated_one(document):
    text = document.read_text(encoding="utf-8")
    assert readme_with_reference(text) == text, "run: python -m live.config_docs --write"


def test_every_key_is_documented_once():
    keys = [spec.metadata["env"] for spec in fields(LiveConfig)]
    template, reference = env_template(), reference_markdown()
    for key in keys:
        assert template.count(f"\n{key}=") == 1
        assert reference.count(f"| `{key}` |") == 1


def test_the_template_as_a_settings_file_gives_the_defaults(tmp_path):
    env, empty = tmp_path / ".env", tmp_path / "empty.env"
    env.write_text(env_template())
    empty.touch()
    assert LiveConfig.load(env_file=env, environ={}) == LiveConfig.load(env_file=empty, environ={})


def test_secrets_are_blank_in_the_template():
    secret_keys = [s.metadata["env"] for s in fields(LiveConfig) if s.metadata["secret"]]
    assert secret_keys
    for key in secret_keys:
        assert f"\n{key}=\n" in env_template()


def test_readme_without_markers_is_an_error():
    with pytest.raises(ValueError, match="config-reference"):
        readme_with_reference("# no markers")
