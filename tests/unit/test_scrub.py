"""No secret leaves in a message: every credential variable's value is scrubbed from what we pass on."""

from __future__ import annotations

import pytest

from tritonops.adapters.registry import scrub


@pytest.mark.parametrize(
    "name",
    [
        "MLFLOW_TRACKING_PASSWORD",
        "MLFLOW_TRACKING_TOKEN",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AZURE_CLIENT_SECRET",
        "AZURE_STORAGE_CONNECTION_STRING",
        "DATABRICKS_TOKEN",
        "TRITONOPS_TRITON_API_KEY",
    ],
)
def test_a_secret_from_the_environment_never_reaches_a_message(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    value = f"value-of-{name.lower()}-7Qx"
    monkeypatch.setenv(name, value)
    text = scrub(f"request to https://store.example/x?sig={value} failed: header {value}")
    assert value not in text and text.count("***") == 2


def test_userinfo_and_authorization_values_are_scrubbed() -> None:
    text = scrub("GET http://alice:pw123@mlflow:5000/api failed; Authorization: Bearer abcdefghijkl")
    assert "pw123" not in text and "abcdefghijkl" not in text
