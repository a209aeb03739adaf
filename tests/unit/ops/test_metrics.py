"""Request metrics kept as plain numbers and rendered as Prometheus families at scrape time."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from nsd.ops.metrics import LATENCY_BUCKETS, Metrics


def _samples(m: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(m.render().decode()):
        for s in family.samples:
            out[s.name, tuple(sorted(s.labels.items()))] = s.value
    return out


def test_counts_errors_and_latency_buckets() -> None:
    m = Metrics()
    for seconds in (0.00005, 0.0001, 0.0003, 0.3, 99.0):
        m.observe("nfs3", "GETATTR", seconds)
    m.observe("nfs3", "LOOKUP", 0.001, "NFS3ERR_NOENT")
    s = _samples(m)
    g = (("op", "GETATTR"), ("protocol", "nfs3"))
    assert s["nsd_requests_total", g] == 5
    assert s["nsd_requests_total", (("op", "LOOKUP"), ("protocol", "nfs3"))] == 1
    assert s["nsd_request_errors_total", (("error", "NFS3ERR_NOENT"), ("op", "LOOKUP"), ("protocol", "nfs3"))] == 1
    assert ("nsd_request_errors_total", (("error", "NFS3ERR_NOENT"), *g)) not in s

    def bucket(le: str) -> float:
        return s["nsd_request_seconds_bucket", (("le", le), *g)]

    assert bucket("0.0001") == 2  # a bound is inclusive (le)
    assert bucket("0.0005") == 3
    assert bucket("0.5") == 4
    assert bucket(repr(float(LATENCY_BUCKETS[-1]))) == 4
    assert bucket("+Inf") == 5 == s["nsd_request_seconds_count", g]
    assert abs(s["nsd_request_seconds_sum", g] - (0.00005 + 0.0001 + 0.0003 + 0.3 + 99.0)) < 1e-9
