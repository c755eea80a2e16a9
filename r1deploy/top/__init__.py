"""`r1deploy top`: the services' live figures in a terminal (docs/observability.md).

A ``Source`` gives ``Frame``s: what each model server and tool gateway is doing now
(r1deploy/top/source.py). ``DirectSource`` reads each service's ``/metrics`` and computes
rates and percentiles between two scrapes (r1deploy/top/figures.py); ``PrometheusSource``
asks a Prometheus server for the same figures (rate(), histogram_quantile()), one model
server per replica it scrapes. r1deploy/top/view.py draws a frame with rich, or writes it
as JSON.
"""
