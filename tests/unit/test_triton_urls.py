import pytest

from tritonops.adapters.triton import expand_urls, split_url
from tritonops.errors import InputError


@pytest.mark.parametrize(
    ("url", "address", "ssl"),
    [
        ("http://triton:8000", "triton:8000", False),
        ("triton:9000", "triton:9000", False),
        ("https://triton", "triton:443", True),
        ("http://[::1]:8000", "[::1]:8000", False),
    ],
)
def test_split_url(url: str, address: str, ssl: bool) -> None:
    assert split_url(url) == (address, ssl)


@pytest.mark.parametrize("url", ["ftp://x:1", "http://", "http://:8000"])
def test_bad_urls(url: str) -> None:
    with pytest.raises(InputError):
        split_url(url)


def test_headless_service_expands_to_every_pod() -> None:
    fake = {"triton-headless.ns.svc": ["10.0.0.7", "10.0.0.5", "fd00::3"]}
    urls = expand_urls(
        ["dns+http://triton-headless.ns.svc:8000", "http://10.0.0.5:8000"], lambda h, p: fake[h]
    )
    assert urls == ["http://10.0.0.7:8000", "http://10.0.0.5:8000", "http://[fd00::3]:8000"]


def test_headless_service_without_pods_is_an_error() -> None:
    with pytest.raises(InputError, match="resolves to no address"):
        expand_urls(["dns+http://empty:8000"], lambda h, p: [])


def test_real_resolution_of_localhost() -> None:
    assert "http://127.0.0.1:8000" in expand_urls(["dns+http://localhost:8000"])
