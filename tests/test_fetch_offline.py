"""Downloads without a network end in one line saying how to get the files by hand.

The network is really absent here: name resolution fails (``socket.getaddrinfo``
raises as it does offline) or the port is closed, so gdown, requests, pooch and
urllib all take their own failure paths.
"""

from __future__ import annotations

import socket

import pytest

import latbench
from latbench.cli import main
from latbench.importers.fetch import DRIVE_FOLDER_URL, HELP_FOLDER_URL, FetchError, fetch_help


@pytest.fixture
def no_dns(monkeypatch):
    def offline(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", offline)


@pytest.fixture
def closed_port():
    with socket.socket() as s:  # bound then closed: nothing listens there
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _one_line(text: str) -> str:
    assert text.count("\n") <= 1, text
    assert "Traceback" not in text and "HTTPSConnectionPool" not in text, text
    return text


def test_load_download_offline_raises_one_clean_line(tmp_path, no_dns):
    with pytest.raises(FetchError) as info:
        latbench.load("jetson_nano", data_home=tmp_path, download=True)
    msg = _one_line(str(info.value))
    assert "cannot resolve drive.google.com (offline?)" in msg
    assert DRIVE_FOLDER_URL in msg and msg.endswith("latbench import eagle PATH")
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_fetch_latbench_offline_exits_2_with_one_line(tmp_path, no_dns, capsys):
    assert main(["fetch", "latbench", "--data-home", str(tmp_path), "--quiet"]) == 2
    err = _one_line(capsys.readouterr().err)
    assert err.startswith("latbench: error: cannot list the Google Drive folder")
    assert "latbench import eagle PATH" in err
    assert not list(tmp_path.rglob("*.parquet"))  # nothing half-imported


def test_fetch_help_closed_port_names_the_manual_route(tmp_path, closed_port):
    with pytest.raises(FetchError) as info:
        fetch_help(tmp_path, ["help-pixel2"], base_url=f"http://127.0.0.1:{closed_port}/")
    msg = _one_line(str(info.value))
    assert "refused the connection" in msg
    assert HELP_FOLDER_URL in msg and "latbench import help PATH" in msg


def test_fetch_eagle_url_closed_port(tmp_path, closed_port, capsys):
    url = f"http://127.0.0.1:{closed_port}/x.pickle"
    assert main(["fetch", "eagle", url, "--data-home", str(tmp_path)]) == 2
    err = _one_line(capsys.readouterr().err)
    assert f"cannot download {url}: the host refused the connection" in err
    assert "latbench import eagle PATH" in err
