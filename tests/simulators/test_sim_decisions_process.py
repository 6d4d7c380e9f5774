"""The writer processes (``simulators.hcp.world._DecisionsProcess`` and
``_TablesProcess``): under the named policies the contexts are rendered and the
``decisions`` parts written in a forked process, the other three tables in
another; their logs must be those written in the simulating process, their errors
must stop the run, and a policy that reads contexts must still get them."""

from __future__ import annotations

import filecmp
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nba.contact import ContactPolicy
from nba.logs import io as logio
from simulators.hcp import world as world_module
from simulators.hcp.policies import DecisionBatch, UniformBatch
from simulators.hcp.world import World

TABLES = ("decisions", "outcomes", "touches", "ground_truth")


def _part_files(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for t in TABLES for p in logio.part_files(root, t))


@pytest.mark.parametrize(
    ("policy", "kw"),
    [
        ("campaign", {}),
        ("uniform", {"slate_size": 3, "rules": ContactPolicy.default()}),
    ],
)
def test_decisions_written_by_the_process_equal_those_written_inline(
    policy: str, kw: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[str] = []
    for cls in ("_DecisionsProcess", "_TablesProcess"):
        real = getattr(world_module, cls)

        def spy(world: World, real: type = real) -> object:
            made.append(real.__name__)
            return real(world)

        monkeypatch.setattr(world_module, cls, spy)
    fw = World(500, seed=3, **kw)
    initial = fw.profile_json.copy()
    forked = fw.run(16, policy=policy, out=tmp_path / "a", flush_days=3)
    # the processes did write them
    assert sorted(made) == ["_DecisionsProcess", "_TablesProcess"]
    monkeypatch.setattr(World, "_contexts_unread", lambda self, pol: False)
    iw = World(500, seed=3, **kw)
    inline = iw.run(16, policy=policy, out=tmp_path / "b", flush_days=3)
    assert len(made) == 2  # and here the simulating process did
    assert forked.decisions == inline.decisions > 0
    files = _part_files(tmp_path / "a")
    assert files == _part_files(tmp_path / "b") and files
    different = [
        f for f in files if not filecmp.cmp(tmp_path / "a" / f, tmp_path / "b" / f, shallow=False)
    ]
    assert different == []
    contexts = logio.read(tmp_path / "a", "decisions").column("context").to_pylist()
    assert all(c.startswith('{"day":"') for c in contexts)
    # profiles changed during the run (their JSON was written by the decisions
    # process); the world's own copy is current after the run all the same
    assert (fw.profile_json != initial).any()
    assert fw.profile_json.tolist() == iw.profile_json.tolist()
    assert fw.profile_json.tolist() == fw.population.profile_json(np.arange(500))


def test_a_writer_process_that_dies_stops_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def die(self: World, dec: object) -> object:
        os._exit(3)  # only ever called in the forked process here

    monkeypatch.setattr(World, "_decisions_table", die)
    with pytest.raises(RuntimeError, match=r"decisions writer process stopped \(exit code 3\)"):
        World(300, seed=1).run(10, out=tmp_path / "logs", flush_days=2)
    assert not (tmp_path / "logs" / "manifest.json").exists()


@pytest.mark.parametrize("table", ["decisions", "touches", "ground_truth", "outcomes"])
def test_a_failing_write_in_a_writer_process_stops_the_run_with_its_error(
    table: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = logio.append

    def failing(root: Path, name: str, t: object, **kw: object) -> object:
        if name == table:  # runs in the decisions process or the tables process
            raise OSError(28, "No space left on device")
        return original(root, name, t, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(logio, "append", failing)
    with pytest.raises(OSError, match="No space left on device"):
        World(300, seed=1).run(10, out=tmp_path / "logs", flush_days=2)
    assert not (tmp_path / "logs" / "manifest.json").exists()
    assert not logio.part_files(tmp_path / "logs", table)


def test_a_tables_process_that_dies_stops_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def die(self: World, name: str, payload: object) -> object:
        os._exit(4)  # only ever called in the forked process here

    monkeypatch.setattr(World, "_log_table", die)
    with pytest.raises(RuntimeError, match=r"log tables writer process stopped \(exit code 4\)"):
        World(300, seed=1).run(10, out=tmp_path / "logs", flush_days=2)
    assert not (tmp_path / "logs" / "manifest.json").exists()


class _ReadsContexts(UniformBatch):
    """A uniform policy that looks at the contexts (as a learning policy would)."""

    name = "reads-contexts"

    def __init__(self) -> None:
        super().__init__(np.random.SeedSequence(4))
        self.seen: list[object] = []

    def decide_batch(self, batch: DecisionBatch) -> tuple[np.ndarray, np.ndarray]:
        self.seen.extend(batch.contexts.tolist())
        return super().decide_batch(batch)


def test_a_policy_that_may_read_contexts_gets_them(tmp_path: Path) -> None:
    pol = _ReadsContexts()
    s = World(200, seed=2).run(5, policy=pol, out=tmp_path / "logs")
    assert len(pol.seen) == s.decisions > 0
    assert all(isinstance(c, str) and c.startswith('{"day":"') for c in pol.seen)
    logged = logio.read(tmp_path / "logs", "decisions").column("context").to_pylist()
    assert sorted(logged) == sorted(pol.seen)  # type: ignore[type-var]


def test_gathered_numbers_equal_the_trackers_and_render_as_build() -> None:
    world = World(600, seed=9)
    world.run(30)
    tr, hcp = world.history, np.arange(0, 600, 3)
    g = world.builder.gather(tr, hcp)
    assert g["days_since_content"].dtype == g["days_since_touch"].dtype == np.int8
    assert np.array_equal(g["days_since_content"], tr.days_since_content(hcp))
    assert np.array_equal(g["days_since_touch"], tr.days_since_touch(hcp))
    assert np.array_equal(g["topic_channel_engagements_90d"], tr.topic_channel_engagements(hcp))
    assert np.array_equal(g["topic_pulls_90d"], tr.topic_pulls(hcp))
    assert (g["days_since_content"] > 0).any() and (g["days_since_touch"] > 0).any()
    day = world.start + timedelta(days=world.history.day)
    built = world.builder.build(day, world.profile_json, tr, hcp, "{}")
    rendered = world.builder.render(day, world.profile_json[hcp], g, "{}")
    assert built.tolist() == rendered.tolist()


def test_counts_too_large_for_int16_are_sent_as_they_are() -> None:
    from simulators.hcp.history import _compact

    small = np.array([[0, 5], [32767, 1]], dtype=np.int32)
    large = np.array([[0, 5], [32768, 1]], dtype=np.int32)
    assert _compact(small).dtype == np.int16 and np.array_equal(_compact(small), small)
    assert _compact(large).dtype == np.int32 and np.array_equal(_compact(large), large)


def _echo(pipe: Any, back: Any) -> None:
    """In a forked reader: send back every job read, then None."""
    pipe.child_started()
    while (job := pipe.get()) is not None:
        back.send(job)
    back.send(None)


def test_jobs_cross_the_pipe_whole_with_their_arrays_out_of_band() -> None:
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    rng = np.random.default_rng(1)
    base = rng.random((6, 5))
    jobs = [
        (
            Path("/x"),
            {
                "f": [base, base[:, 1:3], base.T, np.empty((0, 3))],  # a view, a transpose
                "i": [np.arange(7, dtype=np.int16), np.array([2**40], dtype=np.int64)],
                "s": np.array([b"abc", b"de"], dtype="S3"),
                "o": np.array(['{"a":1}', "é"], dtype=object),  # pickled in band
            },
        ),
        (Path("/y"), {"big": rng.integers(0, 9, 3_000_000, dtype=np.int8)}),  # > the pipe
    ]
    pipe = world_module._JobPipe(2)
    back, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_echo, args=(pipe, send))
    proc.start()
    pipe.parent_started()
    for job in jobs:
        pipe.put(job, 5.0)
    got = []
    for _ in jobs:
        assert back.poll(30), "the reader sent nothing back"
        got.append(back.recv())
    pipe.close()
    assert back.poll(30) and back.recv() is None
    proc.join()
    assert proc.exitcode == 0
    for (p, want), (q, have) in zip(jobs, got, strict=True):
        assert p == q and want.keys() == have.keys()
        for k in want:
            w = want[k] if isinstance(want[k], list) else [want[k]]
            h = have[k] if isinstance(have[k], list) else [have[k]]
            for a, b in zip(w, h, strict=True):
                assert a.dtype == b.dtype and a.shape == b.shape
                assert np.array_equal(a, b)


def test_a_pipe_whose_writer_ends_without_its_last_job_reads_as_ended() -> None:
    pipe = world_module._JobPipe(1)
    pipe.put(np.arange(3), 5.0)
    pipe._pending.put(None)  # the feeder writes the job, then stops
    assert pipe._thread is not None
    pipe._thread.join()
    first = pipe.get()
    assert first.tolist() == [0, 1, 2]
    assert pipe.get() is None  # the None job
    os.close(pipe._w)
    pipe._closed = True
    assert pipe.get() is None  # the end of the pipe
