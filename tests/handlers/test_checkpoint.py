# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Crash safety of the checkpoint writers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from ignite.engine import Engine, Events

from condseg_monai.handlers import AtomicCheckpointSaver, AtomicDiskSaver, ResumeCheckpointLoader, atomic_torch_save


def test_interrupted_write_leaves_previous_checkpoint_loadable(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "model.pt"
    atomic_torch_save({"w": torch.ones(3)}, path)

    real_save = torch.save

    def crashing_save(obj, f, *args, **kwargs):
        f.write(b"partial garbage")  # half a file, then the process "dies"
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(KeyboardInterrupt):
        atomic_torch_save({"w": torch.zeros(3)}, path)
    monkeypatch.setattr(torch, "save", real_save)

    restored = torch.load(path, weights_only=True)
    assert torch.equal(restored["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"], "temporary file left behind"


def test_atomic_save_is_readable_by_others(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    atomic_torch_save({"a": 1}, path)
    assert path.stat().st_mode & 0o044, "checkpoint should not be owner-only (mkstemp default)"


def test_fixed_name_is_never_deleted_before_it_is_replaced(tmp_path: Path) -> None:
    saver = AtomicDiskSaver(tmp_path, filename="latest.pt")
    saver({"x": torch.tensor(1)}, "ignored.pt")
    saver.remove("ignored.pt")  # ignite calls remove() before writing the new file
    assert (tmp_path / "latest.pt").is_file()
    free = AtomicDiskSaver(tmp_path)
    free({"x": torch.tensor(2)}, "epoch=1.pt")
    free.remove("epoch=1.pt")
    assert not (tmp_path / "epoch=1.pt").exists()


def test_saver_and_loader_round_trip_engine_state(tmp_path: Path) -> None:
    def make_trainer(model: torch.nn.Module, opt: torch.optim.Optimizer) -> Engine:
        def step(engine, batch):
            opt.zero_grad()
            model(torch.ones(1, 2)).sum().backward()
            opt.step()

        return Engine(step)

    model = torch.nn.Linear(2, 1)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    trainer = make_trainer(model, opt)
    saver = AtomicCheckpointSaver(
        save_dir=str(tmp_path),
        save_dict={"model": model, "optimizer": opt},
        engine_key="trainer",
        save_interval=1,
        n_saved=1,
        interval_filename="latest.pt",
    )
    saver.attach(trainer)
    trainer.run([0, 0, 0], max_epochs=2)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["latest.pt"]
    state = torch.load(tmp_path / "latest.pt", weights_only=True)
    assert state["trainer"]["iteration"] == 6

    model2 = torch.nn.Linear(2, 1)
    opt2 = torch.optim.Adam(model2.parameters(), lr=0.1)
    trainer2 = make_trainer(model2, opt2)
    loader = ResumeCheckpointLoader(
        load_path=str(tmp_path / "latest.pt"), load_dict={"model": model2, "optimizer": opt2}
    )
    loader.attach(trainer2)
    seen = []
    trainer2.add_event_handler(Events.STARTED, lambda e: seen.append(e.state.iteration))
    trainer2.run([0, 0, 0], max_epochs=3)
    assert seen == [6], "trainer position not restored"
    assert trainer2.state.iteration == 9
    assert int(opt2.state_dict()["state"][0]["step"]) == 9  # 6 restored + 3 new steps
