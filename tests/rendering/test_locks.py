"""The output-folder lock: one writer at a time, stale locks taken over, foreign ones reported."""

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time

import pytest
from helpers import dead_pid, race, write_lock

from doge.locks import LOCK_NAME, FolderLocked, output_lock


@pytest.fixture
def live_pid():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def in_other_thread(fn):
    box = {}

    def run():
        try:
            box["value"] = fn()
        except BaseException as e:
            box["error"] = e

    t = threading.Thread(target=run)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def take(folder, command="filter") -> str:
    with output_lock(folder, command):
        return "held"


def test_a_second_writer_is_refused_with_one_line_naming_the_holder(tmp_path):
    out = tmp_path / "out"
    with output_lock(out, "render") as lock:
        assert lock == out.absolute() / LOCK_NAME
        held = json.loads(lock.read_text())
        assert held["pid"] == os.getpid() and held["host"] == socket.gethostname() and held["command"] == "render"
        with pytest.raises(FolderLocked) as err:
            in_other_thread(lambda: take(out))
        message = str(err.value)
        assert "\n" not in message and str(out) in message
        assert f"doge render (pid {os.getpid()} on this host" in message and "one writer at a time" in message
        assert json.loads(lock.read_text()) == held  # the refused writer changed nothing
    assert not lock.exists()
    assert in_other_thread(lambda: take(out)) == "held"  # free again once released


def test_the_lock_is_released_when_the_work_fails_and_is_reentrant_in_one_thread(tmp_path):
    with pytest.raises(RuntimeError), output_lock(tmp_path, "render"):
        with output_lock(tmp_path, "render"):  # a render inside an augment of the same folder
            pass
        assert (tmp_path / LOCK_NAME).exists()  # the inner exit did not release the outer hold
        raise RuntimeError("render failed")
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_stale_lock_of_a_dead_process_on_this_host_is_taken_over(tmp_path, caplog):
    pid = dead_pid()
    write_lock(tmp_path, pid=pid)
    with caplog.at_level(logging.WARNING, logger="doge"), output_lock(tmp_path, "render") as lock:
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert any(f"pid {pid}" in r.getMessage() and "taking the lock over" in r.getMessage() for r in caplog.records)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing left: no lock, no temp files


def test_a_reused_pid_does_not_keep_a_stale_lock_alive(tmp_path):
    write_lock(tmp_path, pid=os.getpid(), process="another-boot:12345")  # our pid, an older process
    with output_lock(tmp_path, "render") as lock:
        assert json.loads(lock.read_text())["process"] != "another-boot:12345"


def test_a_live_holder_on_this_host_is_not_taken_over(tmp_path, live_pid):
    lock = write_lock(tmp_path, pid=live_pid)
    before = lock.read_bytes()
    with pytest.raises(FolderLocked, match=f"in use by doge render \\(pid {live_pid} on this host"):
        take(tmp_path, "render")
    assert lock.read_bytes() == before


def test_a_lock_from_another_host_is_reported_with_how_to_clear_it(tmp_path):
    lock = write_lock(tmp_path, pid=dead_pid(), host="gpu-node-7")
    with pytest.raises(FolderLocked) as err:
        take(tmp_path, "render")
    message = str(err.value)
    assert "host gpu-node-7" in message and f"delete {lock.absolute()}" in message and "\n" not in message
    assert lock.exists()
    lock.unlink()  # what the message says to do
    with output_lock(tmp_path, "render"):
        pass


def test_an_unreadable_lock_is_reported_not_removed(tmp_path):
    (tmp_path / LOCK_NAME).write_text("")
    with pytest.raises(FolderLocked, match="does not say by whom.*delete"):
        take(tmp_path, "render")
    assert (tmp_path / LOCK_NAME).exists()


def test_the_lock_file_follows_the_umask(tmp_path):
    old = os.umask(0o002)
    try:
        with output_lock(tmp_path / "team", "render") as lock:
            assert lock.stat().st_mode & 0o777 == 0o664
    finally:
        os.umask(old)


def _hold(folder, log, barrier):
    barrier.wait()
    try:
        with output_lock(folder, "render"):
            with open(log, "a") as f:
                f.write(f"in {os.getpid()}\n")
            time.sleep(0.5)
            with open(log, "a") as f:
                f.write(f"out {os.getpid()}\n")
    except FolderLocked as e:
        return str(e)
    return "held"


def test_processes_racing_for_a_stale_lock_get_exactly_one_holder(tmp_path):
    write_lock(tmp_path / "out", pid=dead_pid())
    log = tmp_path / "log"
    results = race(_hold, [(tmp_path / "out", log)] * 4)
    assert [error for _, _, error in results] == [None] * 4
    outcomes = sorted(result for _, result, _ in results)
    assert outcomes.count("held") == 1, outcomes
    assert all("in use by doge render" in o for o in outcomes if o != "held")
    entered = log.read_text().split()
    assert entered[0::2] == ["in", "out"] and len(entered) == 4  # one holder, never two at once
    assert not (tmp_path / "out" / LOCK_NAME).exists()


def test_a_folder_where_the_lock_file_goes_is_one_line_naming_it(tmp_path):
    from doge.errors import DogeError

    (tmp_path / "out" / LOCK_NAME).mkdir(parents=True)
    with pytest.raises(DogeError) as caught, output_lock(tmp_path / "out", "render"):
        pass
    assert (
        str(caught.value)
        == f"{tmp_path / 'out' / LOCK_NAME} is a folder where doge keeps its lock file; remove it and run again"
    )
