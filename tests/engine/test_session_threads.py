"""ONNX Runtime's worker threads stop spinning when a step ends: an idle model costs no CPU
(without that, each step leaves a core busy for about 25 ms, which slowed the window and
whichever runtime the benchmark ran next)."""

from __future__ import annotations

import resource
import time

from desktop.engine import load_model


def process_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def test_an_idle_model_uses_no_cpu_after_a_step(default_model):
    model = load_model(default_model, device="cpu", threads=2)
    assert model.decoder.session.get_session_options().get_session_config_entry(
        "session.force_spinning_stop") == "1"
    model.decoder.forward(model.encode("The keeper wrote down the weather every night."))
    model.decoder.forward([model.encode(" It")[0]])
    before = process_cpu_seconds()
    time.sleep(0.5)
    assert process_cpu_seconds() - before < 0.05
