"""Issue 24, item 6: dask clusters bounded by the machine; scheduler addresses checked and timed.

No test starts real workers: LocalCluster is replaced by a recorder, and the schedulers are
sockets of this process that never answer or answer garbage.
"""

from __future__ import annotations

import os
import socket
import threading

import pytest

from tests.hostile.child import run_limited
from tests.hostile.conftest import one_line_error, run


@pytest.fixture
def plan(tmp_path, case_files):
    image, labels = case_files
    path = tmp_path / "plan.yaml"
    path.write_text(f"steps: [propagate]\ncases:\n  - {{name: a, image: {image}, seeds: {labels}}}\n")
    return path


def fake_scheduler(answer: bytes | None):
    """A socket that accepts dask's connection and then says nothing, or ``answer``; -> its port."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held = []

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)  # never closed while the test runs: the client must give up by itself
            if answer is not None:
                conn.sendall(answer)

    threading.Thread(target=serve, daemon=True).start()
    return server


class TestBoundedClusters:
    def test_local_cluster_is_capped_by_cores_and_memory(self, tmp_path, capsys, plan, monkeypatch):
        import distributed

        started = {}

        class Recorder:
            def __init__(self, **kwargs):
                started.update(kwargs)
                raise RuntimeError("no workers in this test")

        monkeypatch.setattr(distributed, "LocalCluster", Recorder)
        outdir = tmp_path / "out"
        code, _, err = run(capsys, "batch", plan, outdir, "--kind", "weight-free", "--cluster", "local:1000")
        assert started["n_workers"] <= (os.cpu_count() or 1)  # was 1000 (138 processes, 5.4 GB when stopped)
        from napari_sammed.core.io.budget import memory_budget
        from napari_sammed.core.jobs.cluster import WORKER_MEMORY

        cap = max(1, min(os.cpu_count() or 1, memory_budget() // WORKER_MEMORY))
        assert started["n_workers"] == cap < 1000
        assert WORKER_MEMORY <= started["memory_limit"] <= max(memory_budget() // cap, WORKER_MEMORY) + 2**28
        assert f"warning: --cluster local:1000: starting {cap} worker(s), what {os.cpu_count()} core(s)" in err
        assert code == 2
        one_line_error(err, "batch", f"--cluster local:1000: cannot start {cap} workers (no workers in this test)")
        assert not outdir.exists()  # a failed start leaves no OUTDIR

    def test_scheduler_that_never_answers_times_out(self, tmp_path, plan):
        server = fake_scheduler(None)
        address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
        outdir = tmp_path / "out"
        try:  # was: waiting for ever (10+ minutes); a child so that a hang fails the test at 60 s
            done = run_limited("batch", plan, outdir, "--kind", "weight-free", "--scheduler", address,
                               env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"}, timeout=60)
        finally:
            server.close()
        assert done.returncode == 2, done.stderr[-3000:]
        one_line_error(done.stderr, "batch", f"--scheduler {address}: no dask scheduler answered within 2 s")
        assert not outdir.exists()

    @pytest.mark.parametrize("garbage", [b"\xff" * 64, b"\x00\x00\x00\x00\x00\x00\x00\x30" * 8],
                             ids=["ff", "huge-frame"])
    def test_scheduler_that_answers_garbage_is_one_line(self, tmp_path, capsys, plan, garbage):
        import dask

        server = fake_scheduler(garbage)  # huge-frame: a frame length of 3 EiB, which dask tried to allocate
        address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
        outdir = tmp_path / "out"
        try:
            with dask.config.set({"distributed.comm.timeouts.connect": "5s"}):
                code, _, err = run(capsys, "batch", plan, outdir, "--kind", "weight-free", "--scheduler", address)
        finally:
            server.close()
        assert code == 2, err
        one_line_error(err, "batch", f"--scheduler {address}: not a dask scheduler, or unreachable")
        assert not outdir.exists()

    @pytest.mark.parametrize("address", ["inproc://x", "localhost", "tcp://host:99999", "ucx://a:1"])
    def test_addresses_that_are_not_tcp_are_refused_before_connecting(self, tmp_path, capsys, plan, address):
        outdir = tmp_path / "out"
        code, _, err = run(capsys, "batch", plan, outdir, "--kind", "weight-free", "--scheduler", address)
        assert code == 2
        one_line_error(err, "batch", f"--scheduler {address!r}: give tcp://HOST:PORT (or tls://HOST:PORT)")
        assert not outdir.exists()
