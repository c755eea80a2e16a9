"""`r1deploy bench` and the stack's front door (docs/front-door.md): through it by default when
the stack has one (its URL from this host, the ops key, the stack's CA), past it with
--inside, straight to the model server without one. Stack directories are the role's own
rendered settings.json (tests/golden) with a .env; the end-to-end cases run the bench against
instant stand-ins, the front door's over HTTPS with a certificate of its own."""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import json
import shutil
import ssl
from pathlib import Path

import pytest
from aiohttp import web

from r1deploy.bench import cli as bench_cli
from r1deploy.bench.target import TargetError, resolve_target
from tests.stubs.instant_openai import InstantStub, StubThread

REPO = Path(__file__).resolve().parents[2]
VLLM_KEY, OPS_KEY = "v" * 40, "o" * 40


def rendered_stack(root: Path, golden: str, env: str | None = None) -> Path:
    """A stack directory with the settings.json the role rendered for ``golden`` and a .env."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "tests" / "golden" / golden / "settings.json", root / "settings.json")
    if env is None:
        env = f"VLLM_API_KEY='{VLLM_KEY}'\nAPI_KEY_OPS='{OPS_KEY}'\n"
    (root / ".env").write_text(env)
    return root


def edit_settings(root: Path, edit) -> None:
    settings = json.loads((root / "settings.json").read_text())
    edit(settings)
    (root / "settings.json").write_text(json.dumps(settings))


@pytest.fixture(autouse=True)
def _no_openai_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def test_with_a_front_door_the_bench_goes_through_it_with_the_ops_key_and_the_stack_ca(tmp_path):
    stack = rendered_stack(tmp_path, "native-front-door")
    target = resolve_target(str(stack), None, None, None)
    assert target.base_url == "https://127.0.0.1:8443"  # front_door.local_url: from this host
    assert target.api_key == OPS_KEY and target.headers()["Authorization"] == f"Bearer {OPS_KEY}"
    assert target.verify == str(stack / "front-door" / "tls" / "ca.crt")
    assert target.through == "front door"
    # What the front door hides (/tokenize, /version) is asked of the model server itself.
    assert (target.inside_url, target.inside_key) == ("http://127.0.0.1:8000", VLLM_KEY)
    assert target.inside_headers()["Authorization"] == f"Bearer {VLLM_KEY}"


def test_inside_benches_the_model_server_directly_with_its_own_key(tmp_path):
    stack = rendered_stack(tmp_path, "native-front-door")
    target = resolve_target(str(stack), None, None, None, inside=True)
    assert (target.base_url, target.api_key) == ("http://127.0.0.1:8000", VLLM_KEY)
    assert (target.verify, target.through, target.inside_url) == (True, None, None)


def test_without_a_front_door_the_bench_goes_to_the_model_server(tmp_path):
    stack = rendered_stack(tmp_path, "front-door-off", f"VLLM_API_KEY='{VLLM_KEY}'\n")
    for inside in (False, True):
        target = resolve_target(str(stack), None, None, None, inside=inside)
        assert (target.base_url, target.api_key) == ("http://127.0.0.1:8000", VLLM_KEY)
        assert (target.verify, target.through) == (True, None)


def test_a_certificate_not_of_the_stack_ca_is_checked_at_the_public_name(tmp_path):
    stack = rendered_stack(tmp_path, "tls-acme")  # acme: no CA file in the stack
    target = resolve_target(str(stack), None, None, None)
    assert (target.base_url, target.verify) == ("https://chat.example.org", True)
    assert target.api_key == OPS_KEY


def test_open_webui_is_benched_through_the_front_door_too(tmp_path):
    stack = rendered_stack(tmp_path, "native-front-door")
    target = resolve_target(str(stack), None, None, None, via="webui")
    assert target.base_url == "https://127.0.0.1:8443" and target.chat_path.startswith("/api/")
    assert target.api_key is None and target.credentials  # signs in as the admin
    inside = resolve_target(str(stack), None, None, None, via="webui", inside=True)
    assert inside.base_url == json.loads((stack / "settings.json").read_text())["webui"]["url"]


def test_flags_win_over_the_front_door(tmp_path):
    stack = rendered_stack(tmp_path, "native-front-door")
    target = resolve_target(str(stack), "http://10.0.0.2:8000", None, "k2")
    assert (target.base_url, target.api_key, target.through, target.inside_url) == (
        "http://10.0.0.2:8000",
        "k2",
        None,
        None,
    )


def test_a_front_door_without_the_ops_key_says_the_fix(tmp_path):
    stack = rendered_stack(tmp_path, "native-front-door", f"VLLM_API_KEY='{VLLM_KEY}'\n")
    with pytest.raises(TargetError, match="no ops API key") as error:
        resolve_target(str(stack), None, None, None)
    assert "r1_stack_api_keys" in str(error.value) and "--inside" in str(error.value)
    assert resolve_target(str(stack), None, None, None, inside=True).api_key == VLLM_KEY


# ------------------------------------------------------- end to end, against stand-ins


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that is its own CA (the stack's ca.crt here): (cert, key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "r1deploy test CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = directory / "ca.crt", directory / "server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def keys_seen(stub: InstantStub, seen: list[str]) -> InstantStub:
    """Record the bearer key of each chat request the stand-in answers."""
    app = stub.app

    def app_recording() -> web.Application:
        application = app()

        @web.middleware
        async def record(request, handler):
            if request.path.endswith("/chat/completions"):
                seen.append(request.headers.get("Authorization", ""))
            return await handler(request)

        application.middlewares.append(record)
        return application

    stub.app = app_recording
    return stub


def run_bench(stack: Path, out: Path, *flags: str) -> tuple[int, dict]:
    parser = argparse.ArgumentParser(prog="r1deploy")
    bench_cli.register(parser.add_subparsers())
    args = parser.parse_args(
        ["bench", "run", "--stack-dir", str(stack), "--input-len", "8", "--output-len", "4"]
        + ["--num-prompts", "3", "--warmup", "0", "--quiet", "--output", str(out), *flags]
    )
    return args.handler(args), json.loads(out.read_text())


def test_the_bench_trusts_the_stack_ca_and_sends_the_ops_key_against_stand_ins(tmp_path):
    stack = rendered_stack(tmp_path / "stack", "native-front-door")
    cert, key = self_signed(stack / "front-door" / "tls")
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    door_keys: list[str] = []
    inside_keys: list[str] = []
    with (
        StubThread(keys_seen(InstantStub(), door_keys), ssl_context=tls) as door,
        StubThread(keys_seen(InstantStub(), inside_keys)) as inside,
    ):

        def point_at_stand_ins(settings: dict) -> None:
            settings["front_door"]["local_url"] = door.base_url
            settings["vllm"]["url"] = inside.base_url
            settings["model"]["served_name"] = "stub-model"

        edit_settings(stack, point_at_stand_ins)
        code, result = run_bench(stack, tmp_path / "door.json")
        assert code == 0, result["error"]
        assert result["target"]["base_url"] == door.base_url
        assert result["target"]["through"] == "front door"
        assert result["settings"]["prompt_length_method"] == "exact, server /tokenize"
        assert door_keys and set(door_keys) == {f"Bearer {OPS_KEY}"} and not inside_keys

        code, result = run_bench(stack, tmp_path / "inside.json", "--inside")
        assert code == 0, result["error"]
        assert (result["target"]["base_url"], result["target"]["through"]) == (
            inside.base_url,
            None,
        )
        assert inside_keys and set(inside_keys) == {f"Bearer {VLLM_KEY}"}

        # Another certificate than the stack's CA issued: refused, nothing sent.
        door_keys.clear()
        self_signed(stack / "front-door" / "tls")
        code, result = run_bench(stack, tmp_path / "other-ca.json")
        assert code == 2 and "CERTIFICATE_VERIFY_FAILED" in result["error"]
        assert not door_keys
