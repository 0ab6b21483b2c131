"""Threads and the warning for a machine that other processes keep busy."""

from __future__ import annotations

import logging
import os

import torch

from valuetrace.runtime import set_threads, warn_if_oversubscribed


def test_set_threads_takes_the_config_number_and_auto_takes_the_cores(monkeypatch):
    before = torch.get_num_threads()
    try:
        assert set_threads(1) == 1
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        assert set_threads("auto") == max(1, os.cpu_count() or 1)
    finally:
        torch.set_num_threads(before)


def test_a_load_above_the_cores_warns_with_the_fix(monkeypatch, caplog):
    cores = os.cpu_count() or 1
    monkeypatch.setattr(os, "getloadavg", lambda: (cores + 1.5, 0.0, 0.0))
    with caplog.at_level(logging.WARNING, logger="valuetrace.runtime"):
        assert warn_if_oversubscribed("train")
    assert "train: the machine is oversubscribed" in caplog.text
    assert "`threads: 1`" in caplog.text
    monkeypatch.setattr(os, "getloadavg", lambda: (cores - 0.5, 0.0, 0.0))
    assert not warn_if_oversubscribed("extract")
