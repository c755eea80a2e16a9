"""What r1deploy ships for an operator's monitoring: the Grafana dashboard's queries
(monitoring/dashboards/, docs/observability.md)."""
