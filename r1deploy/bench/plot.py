"""PNG of throughput against latency across the sweep (needs the `bench` extra: matplotlib)."""

from __future__ import annotations

from r1deploy.bench.report import level_label


class PlotUnavailable(Exception):
    pass


def plot_sweep(result: dict, path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display on servers
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotUnavailable(
            "--plot needs matplotlib. Fix: pip install 'r1deploy[bench]'."
        ) from None
    levels = [lv for lv in result["levels"] if lv["metrics"]["output_throughput"]]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    panels = [("tpot", "median TPOT (ms)"), ("ttft", "median TTFT (ms)")]
    for ax, (metric, xlabel) in zip(axes, panels, strict=True):
        points = [
            (
                lv["metrics"][metric]["median_ms"],
                lv["metrics"]["output_throughput"],
                level_label(lv),
            )
            for lv in levels
            if lv["metrics"].get(metric)
        ]
        if points:
            xs, ys, labels = zip(*points, strict=True)
            ax.plot(xs, ys, marker="o")
            for x, y, label in points:
                ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("output tokens/s")
        ax.grid(True, alpha=0.3)
    server = result.get("server") or {}
    settings = result["settings"]
    fig.suptitle(
        f"{server.get('model', '?')}: {settings['input_len'] or 'dataset'} in / "
        f"{settings['output_len']} out tokens"
        f"{'  (PARTIAL)' if result['partial'] else ''}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
