"""Metric definitions of `vllm bench serve`, checked on cases worked out by hand."""

import pytest

from r1deploy.bench.metrics import RequestResult, compute_metrics, parse_goodput, percentile


def ok(ttft, latency, tokens, itl, prompt=10):
    return RequestResult(
        success=True,
        ttft=ttft,
        latency=latency,
        output_tokens=tokens,
        prompt_tokens=prompt,
        itl=itl,
    )


# r1: TPOT (0.5 - 0.1) / (5 - 1) = 0.1 s; r2: (1.8 - 0.2) / (9 - 1) = 0.2 s; r3 failed.
CASE = [
    ok(0.1, 0.5, 5, [0.1] * 4),
    ok(0.2, 1.8, 9, [0.2] * 8),
    RequestResult(success=False, error="HTTP 500: boom"),
]


def test_percentile_interpolates_linearly_between_ranks_like_numpy():
    values = [4.0, 1.0, 3.0, 2.0]
    assert percentile(values, 50) == pytest.approx(2.5)
    assert percentile(values, 90) == pytest.approx(3.7)  # rank 2.7
    assert percentile(values, 99) == pytest.approx(3.97)
    assert percentile([7.0], 99) == 7.0


def test_counts_and_throughputs_use_usage_tokens_over_wall_time():
    m = compute_metrics(CASE, duration_s=2.0)
    assert (m["completed"], m["failed"]) == (2, 1)
    assert m["total_output_tokens"] == 14
    assert m["total_input_tokens"] == 20
    assert m["request_throughput"] == pytest.approx(1.0)
    assert m["output_throughput"] == pytest.approx(7.0)
    assert m["total_token_throughput"] == pytest.approx(17.0)


def test_ttft_tpot_itl_e2el_summaries_in_milliseconds():
    m = compute_metrics(CASE, duration_s=2.0, percentiles=(90.0,))
    assert m["ttft"]["mean_ms"] == pytest.approx(150.0)
    assert m["ttft"]["median_ms"] == pytest.approx(150.0)
    assert m["ttft"]["std_ms"] == pytest.approx(50.0)  # population std, as numpy
    assert m["ttft"]["p90_ms"] == pytest.approx(190.0)
    assert m["tpot"]["mean_ms"] == pytest.approx(150.0)
    assert m["tpot"]["median_ms"] == pytest.approx(150.0)
    # ITL is one list over all requests: 4 gaps of 100 ms and 8 of 200 ms.
    assert m["itl"]["count"] == 12
    assert m["itl"]["mean_ms"] == pytest.approx((4 * 100 + 8 * 200) / 12)
    assert m["itl"]["median_ms"] == pytest.approx(200.0)
    assert m["e2el"]["median_ms"] == pytest.approx(1150.0)


def test_tpot_skips_single_token_requests():
    m = compute_metrics([ok(0.1, 0.1, 1, []), ok(0.1, 0.5, 5, [0.1] * 4)], duration_s=1.0)
    assert m["tpot"]["count"] == 1
    assert m["tpot"]["mean_ms"] == pytest.approx(100.0)


def test_goodput_counts_requests_within_every_slo():
    # r1 meets ttft <= 150 and tpot <= 150; r2's TTFT of 200 ms misses.
    m = compute_metrics(CASE, duration_s=2.0, goodput_slos_ms={"ttft": 150, "tpot": 150})
    assert m["request_goodput"] == pytest.approx(0.5)
    # Limits are inclusive, as in vLLM (slo >= observed).
    m = compute_metrics(CASE, duration_s=2.0, goodput_slos_ms={"ttft": 200})
    assert m["request_goodput"] == pytest.approx(1.0)
    # A single-token request counts TPOT 0 for goodput.
    m = compute_metrics([ok(0.1, 0.1, 1, [])], duration_s=1.0, goodput_slos_ms={"tpot": 1})
    assert m["request_goodput"] == pytest.approx(1.0)


def test_nothing_measured_reads_none_not_zero():
    m = compute_metrics([RequestResult(success=False, error="x")], duration_s=1.0)
    assert m["completed"] == 0
    assert m["request_throughput"] is None
    assert m["output_throughput"] is None
    assert m["ttft"] is None and m["tpot"] is None and m["itl"] is None


def test_responses_without_usage_are_counted_not_guessed():
    no_usage = RequestResult(success=True, ttft=0.1, latency=0.5, itl=[0.1] * 4)
    m = compute_metrics([no_usage, ok(0.1, 0.5, 5, [0.1] * 4)], duration_s=1.0)
    assert m["usage_missing"] == 1
    assert m["total_output_tokens"] == 5
    assert m["tpot"]["count"] == 1


def test_parse_goodput_flags():
    assert parse_goodput(["ttft:500", "tpot:50"]) == {"ttft": 500.0, "tpot": 50.0}
    with pytest.raises(ValueError, match="NAME one of ttft, tpot, e2el"):
        parse_goodput(["itl:5"])
    with pytest.raises(ValueError, match="not a number"):
        parse_goodput(["ttft:fast"])
    with pytest.raises(ValueError, match="> 0"):
        parse_goodput(["ttft:0"])
