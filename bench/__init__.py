"""Speed benchmarks of hw2lib: each one a ratio against a reference run in the same process.

``python -m bench`` (or ``python bench/run_all.py``) runs them all and prints one table;
``--quick`` is a smoke run of a few seconds; ``--markdown FILE`` also writes the table as
Markdown. The single benchmarks run alone too: ``python -m bench.cnn_speed``,
``python -m bench.cnn_steps`` (a CNN step, part by part), ``python -m bench.seq2seq_speed``,
``python -m bench.live_speed``, ``python -m bench.page_weight`` (the rendered book's page weights),
``python -m bench.end_to_end``.

These are measurements, not tests: they print numbers and say which goals are met; they
never fail a build.
"""
