"""`bench compare`, the stack-dir target, the roofline line and the plot."""

import argparse
import json

import pytest

from r1deploy.bench import cli as bench_cli
from r1deploy.bench import report, roofline
from r1deploy.bench.target import TargetError, resolve_target


def level(conc, out_tps, ttft_p50, tpot_p50):
    summary = lambda p50: {"mean_ms": p50, "median_ms": p50, "p99_ms": p50 * 2}  # noqa: E731
    return {
        "concurrency": conc,
        "request_rate": None,
        "status": "complete",
        "sent": 10,
        "metrics": {
            "completed": 10,
            "request_throughput": out_tps / 64,
            "output_throughput": out_tps,
            "request_goodput": None,
            "ttft": summary(ttft_p50),
            "tpot": summary(tpot_p50),
            "itl": summary(tpot_p50),
            "e2el": summary(ttft_p50 + 63 * tpot_p50),
        },
    }


def result(levels, output_len=64, partial=False):
    return {
        "kind": "r1deploy-bench",
        "partial": partial,
        "levels": levels,
        "settings": {
            "input_len": 128,
            "output_len": output_len,
            "ignore_eos": True,
            "dataset": None,
        },
    }


def run_cli(*argv):
    parser = argparse.ArgumentParser(prog="r1deploy")
    bench_cli.register(parser.add_subparsers())
    args = parser.parse_args(["bench", *argv])
    return args.handler(args)


def test_compare_gives_b_over_a_ratios_per_matching_level():
    a = result([level(1, 300.0, 30.0, 2.0), level(8, 1000.0, 60.0, 5.0)])
    b = result([level(1, 450.0, 15.0, 2.5), level(16, 2000.0, 90.0, 8.0)])
    rows, warnings = report.compare(a, b)
    assert [row["level"] for row in rows] == ["c=1"]
    ratios = rows[0]["ratios"]
    assert ratios["out tok/s"]["ratio"] == pytest.approx(1.5)
    assert ratios["TTFT p50"]["ratio"] == pytest.approx(0.5)
    assert ratios["TPOT p50"]["ratio"] == pytest.approx(1.25)
    assert "c=8 only in A" in warnings and "c=16 only in B" in warnings
    table = report.compare_table(rows)
    assert "1.500+" in table  # more throughput: better
    assert "0.500+" in table  # less TTFT: better
    assert "1.250 " in table  # more TPOT: worse, unmarked


def test_compare_warns_when_workloads_differ_or_a_result_is_partial():
    rows, warnings = report.compare(
        result([level(1, 1, 1, 1)]), result([level(1, 1, 1, 1)], output_len=32, partial=True)
    )
    assert "settings differ: output_len 64 vs 32" in warnings
    assert "B is a partial result" in warnings


def test_compare_cli_prints_ratios_and_rejects_other_files(tmp_path, capsys):
    a, b, bad = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "bad.json"
    a.write_text(json.dumps(result([level(1, 300.0, 30.0, 2.0)])))
    b.write_text(json.dumps(result([level(1, 600.0, 30.0, 1.0)])))
    bad.write_text('{"completed": 3}')
    assert run_cli("compare", str(a), str(b)) == 0
    assert "2.000+" in capsys.readouterr().out
    assert run_cli("compare", str(a), str(bad)) == 2
    assert (
        'not an r1deploy bench result (/kind must be "r1deploy-bench")' in capsys.readouterr().err
    )


def test_target_comes_from_the_stack_dir_and_flags_win(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    (tmp_path / "settings.json").write_text(
        json.dumps(
            {
                "schema_version": 1,
                "model": {"served_name": "r1", "max_model_len": 4096},
                "vllm": {"url": "http://127.0.0.1:8000", "args": ["--served-model-name", "r1"]},
            }
        )
    )
    (tmp_path / ".env").write_text("# secrets\nVLLM_API_KEY='k-123'\nOTHER=x\n")
    target = resolve_target(str(tmp_path), None, None, None)
    assert (target.base_url, target.model, target.api_key) == (
        "http://127.0.0.1:8000",
        "r1",
        "k-123",
    )
    assert target.server_args == ["--served-model-name", "r1"]
    assert target.headers()["Authorization"] == "Bearer k-123"
    target = resolve_target(str(tmp_path), "http://10.0.0.2:8000", "other", "k2")
    assert (target.base_url, target.model, target.api_key) == (
        "http://10.0.0.2:8000",
        "other",
        "k2",
    )


def test_bad_stack_dir_names_the_file_and_the_fix(tmp_path):
    with pytest.raises(TargetError, match=r"settings.json does not exist: render the stack"):
        resolve_target(str(tmp_path), None, None, None)
    (tmp_path / "settings.json").write_text('{"model": {}}')
    with pytest.raises(TargetError, match=r"settings.json: /vllm/url is missing; render"):
        resolve_target(str(tmp_path), None, None, None)
    with pytest.raises(TargetError, match="no endpoint"):
        resolve_target(None, None, None, None)


def test_roofline_ceilings_and_measured_fraction():
    # 3.35 TB/s / 3.09 GB per token = ~1084 tok/s; the table: ~1085, 660, 326, 117.
    assert roofline.ceiling_tokens_per_s("H100-SXM") == pytest.approx(1085, abs=2)
    assert roofline.ceiling_tokens_per_s("A100-80GB") == pytest.approx(660, abs=2)
    assert roofline.ceiling_tokens_per_s("RTX-4090") == pytest.approx(326, abs=2)
    assert roofline.ceiling_tokens_per_s("RTX-3060-12GB") == pytest.approx(117, abs=1)
    assert roofline.gpu_key("NVIDIA H100 80GB HBM3") == "H100-SXM"
    assert roofline.gpu_key("NVIDIA GeForce RTX 4090") == "RTX-4090"
    roof = roofline.roofline("A100-80GB", 5.0, "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", "--gpu")
    assert roof["measured_tokens_per_s"] == pytest.approx(200.0)
    assert roof["fraction"] == pytest.approx(200.0 / roof["ceiling_tokens_per_s"])
    assert roof["note"] is None
    line = report.roofline_line(roof)
    assert "single-stream ceiling 660 tok/s; measured 200 tok/s = 30% of it" in line
    unknown = roofline.roofline("Tesla T4", 5.0, None, "--gpu")
    assert unknown["known"] is False and "--gpu with one of" in report.roofline_line(unknown)
    assert roofline.roofline(None, 5.0, None, "nvidia-smi") is None


def test_plot_writes_a_png(tmp_path):
    from r1deploy.bench.plot import plot_sweep

    data = result([level(1, 300.0, 30.0, 2.0), level(8, 1000.0, 60.0, 5.0)])
    data["server"] = {"model": "m"}
    path = tmp_path / "sweep.png"
    plot_sweep(data, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_saved_command_line_hides_the_api_key():
    from r1deploy.bench.runner import redacted_argv

    assert redacted_argv(["run", "--api-key", "s3cret", "--api-key=s3", "--model", "m"]) == [
        "run",
        "--api-key",
        "***",
        "--api-key=***",
        "--model",
        "m",
    ]
