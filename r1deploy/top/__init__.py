"""`r1deploy top`: the services' live figures in a terminal (docs/observability.md).

A ``Source`` gives ``Frame``s: what each model server and tool gateway is doing now. The one
source built is ``DirectSource`` (r1deploy/top/source.py), which reads each service's
``/metrics`` and computes rates and percentiles between two scrapes (r1deploy/top/figures.py);
one that asks a Prometheus server would return the same frames. r1deploy/top/view.py draws
a frame with rich, or writes it as JSON.
"""
