"""Collectives of perser.methods.distributed outside torchrun (the collective itself faked)."""

from __future__ import annotations

import torch

from perser.methods import distributed


def _fake_group(monkeypatch, dev: torch.device, calls: list):
    monkeypatch.setattr(distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    monkeypatch.setattr(distributed, "device", lambda: dev)

    def all_reduce(t, op=None):  # a second rank holding the same values
        calls.append(t.device)
        t.mul_(2)

    def broadcast(t, src=0):
        calls.append(t.device)
        t.fill_(7.0)

    monkeypatch.setattr(distributed.dist, "all_reduce", all_reduce)
    monkeypatch.setattr(distributed.dist, "broadcast", broadcast)


def test_all_reduce_sum_reduces_on_the_rank_device_and_writes_back(monkeypatch):
    calls: list = []
    _fake_group(monkeypatch, torch.device("cpu"), calls)
    a, b = torch.ones(2, 3), torch.arange(4.0)
    out = distributed.all_reduce_sum([a, b])
    assert out[0] is a and out[1] is b  # in place
    assert torch.equal(a, torch.full((2, 3), 2.0)) and torch.equal(b, 2 * torch.arange(4.0))
    assert calls == [torch.device("cpu")]  # one flat collective on the rank's device
    distributed.all_reduce_mean([a])
    assert torch.equal(a, torch.full((2, 3), 2.0))


def test_broadcast_module_writes_every_parameter(monkeypatch):
    calls: list = []
    _fake_group(monkeypatch, torch.device("cpu"), calls)
    net = torch.nn.Linear(3, 2)
    distributed.broadcast_module(net)
    assert len(calls) == 2 and all(bool((p == 7.0).all()) for p in net.parameters())


def test_outside_a_group_nothing_changes():
    a = torch.ones(3)
    assert distributed.all_reduce_sum([a])[0] is a and torch.equal(a, torch.ones(3))
