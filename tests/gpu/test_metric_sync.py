"""On a CUDA device, accumulating metrics never waits for the GPU: names that appear,
disappear and vary per batch add rows with device ops only (torch raises on any
synchronising call under `set_sync_debug_mode("error")`). Only `means` syncs."""

from __future__ import annotations

import pytest
import torch

from runlab.train.metrics import Accumulator

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_dynamic_names_accumulate_without_a_host_sync():
    dev = torch.device("cuda")
    window, epoch = Accumulator(), Accumulator()
    expected: dict[str, list[float]] = {}
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for i in range(60):
            terms = {"loss": torch.full((), float(i), device=dev),
                     f"part/{i % 3}": torch.full((), 1.0, device=dev)}
            if i >= 20:
                terms["late"] = torch.full((), 2.0, device=dev)
            vals = window.add(terms, 4)
            epoch.add_values(vals, 4, tuple(terms))
            for k, v in (("loss", float(i)), (f"part/{i % 3}", 1.0), ("late", 2.0)):
                if k in terms:
                    expected.setdefault(k, []).append(v)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    means = epoch.means()
    assert means == pytest.approx({k: sum(v) / len(v) for k, v in expected.items()})
    assert window.means() == means
