"""`r1deploy model fetch` against a local stand-in for the hub (tests/stubs/hub_standin.py):
huggingface_hub's real snapshot_download and model_info, over HTTP on the loopback, into a
directory; the stand-in's repo is small fake files (the real test model needs torch)."""

from __future__ import annotations

import json
import os
import socket
import time
from collections import namedtuple
from pathlib import Path

import httpx2
import pytest

from r1deploy.cli import main
from r1deploy.cliconv import ExitCode
from r1deploy.model import fetch as fetchmod
from tests.stubs.hub_standin import COMMIT, GOOD_TOKEN, REPO, Faults, HubStandin

Usage = namedtuple("Usage", "total used free")
GiB = 1024**3


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in ("HF_TOKEN", "HF_ENDPOINT", "HF_HUB_DOWNLOAD_TIMEOUT", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def free_disk(monkeypatch):
    """The free disk the fetch sees: plenty, unless a test sets less (this machine's own
    disk may be nearly full, and the margin alone is 256 MiB)."""
    state = {"free": 100 * GiB}
    monkeypatch.setattr(
        fetchmod.shutil, "disk_usage", lambda path: Usage(200 * GiB, 0, state["free"])
    )
    return state


@pytest.fixture
def hub():
    with HubStandin() as standin:
        yield standin


def fetch(hub, dest: Path, *extra: str, endpoint: str | None = None) -> int:
    argv = ["model", "fetch", "--repo", REPO, "--dest", str(dest), "--timeout", "3"]
    return main([*argv, "--endpoint", endpoint or hub.endpoint, *extra])


def repo_files(dest: Path) -> dict[str, bytes]:
    return {
        p.relative_to(dest).as_posix(): p.read_bytes()
        for p in dest.rglob("*")
        if p.is_file() and not p.relative_to(dest).as_posix().startswith(".cache/")
    }


def expected_files(hub) -> dict[str, bytes]:
    return {path: entry.data for path, entry in hub.entries.items()}


def resolve_gets(hub) -> list:
    return [r for r in hub.requests if r.method == "GET" and "/resolve/" in r.path]


def test_full_download_lands_in_dest_as_in_the_repo_and_is_verified(hub, tmp_path, capsys):
    dest = tmp_path / "model"
    assert fetch(hub, dest) == ExitCode.OK
    out, err = capsys.readouterr()
    assert repo_files(dest) == expected_files(hub)
    assert f"commit {COMMIT[:12]}" in out and "every one matches" in out
    # progress: one line per finished file (stderr is not a terminal here), then the checks
    assert "got model.safetensors (12.0 MiB)" in err
    assert "ok sha256   model.safetensors (downloaded)" in err
    assert "ok git-sha1 config.json (downloaded)" in err
    assert not list(dest.rglob("*.incomplete"))

    # Run again: nothing downloaded, every file checked again.
    hub.requests.clear()
    assert fetch(hub, dest, "--format", "json") == ExitCode.OK
    data = json.loads(capsys.readouterr().out)
    assert resolve_gets(hub) == []
    assert data["ok"] and data["download_bytes"] == 0 and data["commit"] == COMMIT
    assert {f["status"] for f in data["files"]} == {"kept"}
    assert {f["path"]: f["algorithm"] for f in data["files"]}["tokenizer.json"] == "sha256"


def test_the_endpoint_may_come_from_hf_endpoint(hub, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint + "/")
    assert main(["model", "fetch", "--repo", REPO, "--dest", str(tmp_path / "m")]) == 0
    assert f"from {hub.endpoint}:" in capsys.readouterr().err


def test_a_connection_cut_mid_file_is_resumed_with_a_range_request(tmp_path, capsys):
    # huggingface_hub writes in 10 MiB chunks: cut after the first one, once.
    with HubStandin(faults=Faults(cut_after={"model.safetensors": 11_000_000})) as hub:
        assert fetch(hub, tmp_path / "m") == ExitCode.OK
        gets = hub.gets("model.safetensors")
    assert [g.range for g in gets] == [None, "bytes=10485760-"]
    assert repo_files(tmp_path / "m") == expected_files(hub)
    assert "Trying to resume download" in capsys.readouterr().err


def test_an_interrupted_run_is_continued_by_the_next_one(tmp_path, capsys):
    """The weights' download fails (the hub answers 500): the run stops with exit 2 and the
    finished files stay; the next run fetches only what is missing and verifies all."""
    dest = tmp_path / "m"
    with HubStandin(faults=Faults(server_error={"model.safetensors": 1})) as hub:
        assert fetch(hub, dest) == ExitCode.CANNOT_RUN
        err = capsys.readouterr().err
        assert "failed to answer (500" in err and "run again" in err
        assert not (dest / "model.safetensors").exists()
        assert (dest / "config.json").read_bytes() == hub.entries["config.json"].data
        assert not list(dest.rglob("*.incomplete"))
        first = {r.path for r in resolve_gets(hub)}

        hub.requests.clear()
        assert fetch(hub, dest) == ExitCode.OK
        again = [r.path.rsplit("/", 1)[-1] for r in resolve_gets(hub)]
    assert again == ["model.safetensors"]
    assert len(first) == len(hub.entries)
    assert repo_files(dest) == expected_files(hub)


def test_a_partial_file_left_by_a_killed_run_is_removed(hub, tmp_path, capsys):
    dest = tmp_path / "m"
    stale = dest / ".cache/huggingface/download/model.safetensors.abc.1234abcd.incomplete"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"\0" * 4096)
    assert fetch(hub, dest) == ExitCode.OK
    assert not stale.exists()


def test_a_corrupted_download_is_named_removed_and_fails_with_exit_1(tmp_path, capsys):
    dest = tmp_path / "m"
    with HubStandin(faults=Faults(corrupt={"model.safetensors"})) as hub:
        assert fetch(hub, dest) == ExitCode.FAILED
        err = capsys.readouterr().err
        assert "BAD model.safetensors: sha256 is" in err
        assert "did not match the hub's checksum and were removed: model.safetensors" in err
        assert "fix: run the same command again" in err
        assert not (dest / "model.safetensors").exists()
        assert (dest / "config.json").exists()

        hub.faults.corrupt.clear()  # the way is clean again
        assert fetch(hub, dest) == ExitCode.OK
    assert repo_files(dest) == expected_files(hub)


def test_a_file_damaged_on_disk_is_fetched_again(hub, tmp_path, capsys):
    dest = tmp_path / "m"
    assert fetch(hub, dest) == ExitCode.OK
    config = dest / "config.json"
    config.write_bytes(config.read_bytes().replace(b"qwen2", b"qwen3"))  # same size
    capsys.readouterr()
    hub.requests.clear()
    assert fetch(hub, dest) == ExitCode.OK
    assert (
        "config.json was there but its git-sha1 does not match: removed" in capsys.readouterr().err
    )
    assert [r.path.rsplit("/", 1)[-1] for r in resolve_gets(hub)] == ["config.json"]
    assert repo_files(dest) == expected_files(hub)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


CANNOT = [
    pytest.param(
        Faults(token=GOOD_TOKEN),
        "hf_wrong",
        {},
        ["refused the token from --token-file", "401", "r1_stack_hf_token", "settings/tokens"],
        id="401-wrong-token",
    ),
    pytest.param(
        Faults(token=GOOD_TOKEN),
        None,
        {},
        ["is a gated repo: it needs a token", "accept the licence on the model page", "HF_TOKEN"],
        id="401-gated-no-token",
    ),
    pytest.param(
        Faults(token=GOOD_TOKEN, gated_accepted=False),
        GOOD_TOKEN,
        {},
        ["(403", f"accept the licence on the model page http://127.0.0.1:PORT/{REPO}"],
        id="403-gated-licence-not-accepted",
    ),
    pytest.param(
        Faults(token=GOOD_TOKEN),
        GOOD_TOKEN,
        {"repo": "standin-org/No-Such-Model"},
        ["has no repo standin-org/No-Such-Model", "(404)", "r1_stack_model_id"],
        id="404-repo",
    ),
    pytest.param(
        Faults(),
        None,
        {"repo": "standin-org/No-Such-Model"},
        ["that can be read without a token (401)", "r1_stack_model_id", "r1_stack_hf_token"],
        id="401-repo-not-found-anonymous",
    ),
    pytest.param(
        Faults(),
        None,
        {"revision": "v9"},
        ["has no revision 'v9'", "(404)", "--revision"],
        id="404-revision",
    ),
    pytest.param(
        Faults(),
        None,
        {"endpoint": "closed"},
        ["cannot connect to http://127.0.0.1:", "HF_ENDPOINT", "r1_stack_hf_endpoint"],
        id="unreachable-endpoint",
    ),
]


@pytest.mark.parametrize(("faults", "token", "change", "words"), CANNOT)
def test_what_cannot_succeed_stops_in_seconds_with_exit_2_and_the_fix(
    faults, token, change, words, tmp_path, capsys
):
    dest = tmp_path / "m"
    with HubStandin(faults=faults) as hub:
        argv = [
            "model",
            "fetch",
            "--repo",
            change.get("repo", REPO),
            "--revision",
            change.get("revision", "main"),
            "--dest",
            str(dest),
            "--timeout",
            "3",
            "--endpoint",
            f"http://127.0.0.1:{_closed_port()}" if change.get("endpoint") else hub.endpoint,
        ]
        if token:
            token_file = tmp_path / "token"
            token_file.write_text(token + "\n")
            token_file.chmod(0o600)
            argv += ["--token-file", str(token_file)]
        started = time.monotonic()
        code = main(argv)
        seconds = time.monotonic() - started
        port = hub.endpoint.rsplit(":", 1)[-1]
    out, err = capsys.readouterr()
    assert code == ExitCode.CANNOT_RUN, err
    assert seconds < 5
    assert "  fix: " in err
    for word in words:
        assert word.replace("PORT", port) in err, err
    assert not dest.exists()
    if token:
        assert token not in out + err


def test_a_name_that_does_not_resolve_is_called_a_dns_problem():
    source = fetchmod.Source(repo=REPO, endpoint="https://hub.example.invalid")
    error = fetchmod.explain(httpx2.ConnectError("[Errno -2] Name or service not known"), source)
    assert error.code == 2
    assert "cannot resolve hub.example.invalid (DNS)" in error.cause
    assert "HF_ENDPOINT (r1_stack_hf_endpoint" in error.fix


def test_too_little_disk_stops_before_any_byte_with_the_numbers_and_the_fix(
    hub, tmp_path, free_disk, capsys
):
    free_disk["free"] = 100 * 1024**2  # 100 MiB: less than the 12 MiB download + 256 MiB margin
    dest = tmp_path / "models" / "m"
    started = time.monotonic()
    assert fetch(hub, dest) == ExitCode.CANNOT_RUN
    assert time.monotonic() - started < 5
    err = capsys.readouterr().err
    assert "not enough free disk" in err
    assert "12.1 MiB to download + 256.0 MiB margin = 268.1 MiB needed, 100.0 MiB free" in err
    assert "--dest DIR" in err and "nothing was downloaded" in err
    assert not dest.exists() and resolve_gets(hub) == []


def test_check_reports_what_would_be_downloaded_and_writes_nothing(hub, tmp_path, capsys):
    dest = tmp_path / "m"
    assert fetch(hub, dest, "--check", "--format", "json") == ExitCode.OK
    data = json.loads(capsys.readouterr().out)
    assert data["check"] and data["ok"]
    assert data["download_bytes"] == data["total_bytes"] == hub.total_bytes()
    assert data["free_bytes"] == 100 * GiB
    assert {f["status"] for f in data["files"]} == {"planned"}
    assert not dest.exists() and not os.path.exists(tmp_path / ".cache")
    assert resolve_gets(hub) == []


def test_check_with_too_little_disk_is_exit_2(hub, tmp_path, free_disk, capsys):
    free_disk["free"] = 1024**2
    assert fetch(hub, tmp_path / "m", "--check") == ExitCode.CANNOT_RUN
    assert "not enough free disk" in capsys.readouterr().err


def test_the_token_comes_from_a_file_or_hf_token_never_a_flag(tmp_path, monkeypatch, capsys):
    with HubStandin(faults=Faults(token=GOOD_TOKEN)) as hub:
        monkeypatch.setenv("HF_TOKEN", GOOD_TOKEN)
        assert fetch(hub, tmp_path / "m") == ExitCode.OK
        assert all(r.authorization == f"Bearer {GOOD_TOKEN}" for r in hub.requests)
    assert GOOD_TOKEN not in "".join(capsys.readouterr())
    missing = tmp_path / "no-such-token"
    code = main(
        [
            "model",
            "fetch",
            "--repo",
            REPO,
            "--dest",
            str(tmp_path / "m2"),
            "--token-file",
            str(missing),
        ]
    )
    assert code == ExitCode.CANNOT_RUN
    assert "cannot read the Hugging Face token file" in capsys.readouterr().err


def test_an_endpoint_that_never_answers_stops_after_the_timeout(tmp_path, capsys):
    with socket.socket() as silent:  # accepts connections (the backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        code = main(
            ["model", "fetch", "--repo", REPO, "--dest", str(tmp_path / "m")]
            + ["--endpoint", endpoint, "--timeout", "1"]
        )
        seconds = time.monotonic() - started
    err = capsys.readouterr().err
    assert code == ExitCode.CANNOT_RUN
    assert 1 <= seconds < 4
    assert f"no answer from {endpoint} within 1 s (ReadTimeout)" in err
    assert "raise --timeout" in err


def test_progress_lines_count_partial_files_and_name_each_finished_one(tmp_path, capsys):
    import io

    dest = tmp_path / "m"
    files = [fetchmod.HubFile("a.bin", 10, sha256="0" * 64)]
    plan = fetchmod.Plan(fetchmod.Source(REPO), dest, COMMIT, files, set(), 1, tmp_path)
    stream = io.StringIO()
    with fetchmod.Progress(stream, every=0.01).watch(plan):
        partial = dest / ".cache/huggingface/download/a.bin.0000.1234abcd.incomplete"
        partial.parent.mkdir(parents=True)
        partial.write_bytes(b"12345")
        time.sleep(0.8)
        partial.unlink()
        (dest / "a.bin").write_bytes(b"1234567890")
    lines = stream.getvalue().splitlines()
    assert any(line.startswith("  50% 5 B of 10 B, ") and "0 of 1 files" in line for line in lines)
    assert lines[-1] == "  got a.bin (10 B)"
