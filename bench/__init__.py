"""Benchmarks for o4o-operator (issue 8): ``python -m bench`` or ``make bench``.

Each benchmark measures one ratio or figure in one run, prints it next to its target,
writes ``bench/results/<name>.json`` and asserts nothing:

- P1 (:mod:`bench.p1_concurrency`): N instances applied at once, wall time to all Ready
  divided by one instance's critical path, at fixed cloud and per-command latencies.
- P2 (:mod:`bench.p2_api_writes`): kube-apiserver write requests per instance lifecycle.
- P3 (:mod:`bench.p3_fanout`): the runtime script on 50 sandbox hosts, ansible-playbook's
  wall time divided by the operator's own SSH fan-out.
- P4 (:mod:`bench.p4_idle`): operator RSS and CPU with 1000 Ready instances, idle.
- P5 (:mod:`bench.p5_dashboard`): the dashboard list page, through ``bench/dashboard_bench.py``.
"""
