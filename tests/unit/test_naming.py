from datetime import UTC, datetime

import pytest

from tritonops.core.naming import (
    new_run_id,
    parse_version,
    quarantine_dirname,
    validate_name,
    validate_run_id,
)
from tritonops.errors import InvalidName


@pytest.mark.parametrize("name", ["fraud", "Fraud_v2", "a", "m-1.onnx", "9lives", "x" * 128])
def test_valid_names(name: str) -> None:
    assert validate_name("model", name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "a/b",
        "..",
        "a..b",
        "../x",
        ".hidden",
        "-flag",
        "has space",
        "x" * 129,
        "tab\t",
        "ü",
        "a\\b",
        "a\nb",
    ],
)
def test_invalid_names(name: str) -> None:
    with pytest.raises(InvalidName) as exc:
        validate_name("model", name)
    assert "model name" in str(exc.value)


@pytest.mark.parametrize(("raw", "version"), [("1", 1), (13, 13), (" 7 ", 7)])
def test_versions(raw: str | int, version: int) -> None:
    assert parse_version(raw) == version


@pytest.mark.parametrize("raw", ["0", "-1", "1.5", "abc", "", "01", "1e3"])
def test_bad_versions(raw: str) -> None:
    with pytest.raises(InvalidName):
        parse_version(raw)


def test_quarantine_name_keeps_the_original_format() -> None:
    moment = datetime(2025, 12, 31, 2, 59, 2, tzinfo=UTC)
    assert quarantine_dirname(13, moment) == "13.failed_20251231T025902"


def test_generated_run_ids_are_valid_argo_style_names() -> None:
    rid = new_run_id("Fraud_Model", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "abc123")
    assert rid == "fraud-model-20260102t030405-abc123"
    assert validate_run_id(rid) == rid
    with pytest.raises(InvalidName):
        validate_run_id("../escape")
