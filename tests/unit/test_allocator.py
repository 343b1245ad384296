"""The allocator policy of `visrag serve`: a batch's working memory stays mapped between batches.

Each batch of the image encoder allocates and frees the same large tensors on the inference
thread. If the allocator hands that memory back to the OS after each batch, the next batch
page-faults (and the kernel zeroes) all of it again: that made the served model 1.3x slower than
the same model offline (docs/performance.md). Measured in a fresh interpreter (the policy is
process-wide) on a thread, like the inference worker, with numpy blocks of the sizes a ViT batch
frees: 12 blocks of 8 MB live at once, then all freed, five times over.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import resource, sys, threading
import numpy as np
from models.allocator import tune_allocator

if not tune_allocator():
    print("unsupported")
    sys.exit(0)
faults = []

def batches():
    def one():
        blocks = [np.ones(1_000_000, dtype=np.float64) for _ in range(12)]
        return sum(float(b[0]) for b in blocks)
    one()  # the first batch maps its memory
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        one()
    faults.append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5)

thread = threading.Thread(target=batches)
thread.start()
thread.join()
print(faults[0])
"""


def test_repeated_batches_reuse_their_memory_instead_of_faulting_it_in_again():
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=120
    ).stdout.strip()
    if out == "unsupported":
        pytest.skip("not glibc: the allocator policy does not apply")
    pages_per_batch = 12 * 8_000_000 // 4096
    # glibc's defaults fault ~13% of the pages in again every batch here, a 4 MB mmap threshold
    # ~26% (with transparent huge pages; all of them without); the policy: none.
    assert float(out) < pages_per_batch / 100, out
