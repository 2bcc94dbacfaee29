"""What plan's budget lets through when it must decode every frame (MPEG-TS/PS, AVI, raw
streams: no container index it can trust), against the issue's figures: an hour of 1080p30
was refused by a plan function of 1024 MB (a share of one vCPU); with one full vCPU it fits,
and a video that does not fit is refused with the longest part that does. And the worker's
memory against the frame size: 4K does not fit a one-vCPU worker, and is refused in plan
when the stack is set to one, not left to run out of memory in every chunk."""
from __future__ import annotations

import pytest

from blurfaces.aws import sizing
from blurfaces.aws.settings import Settings


def test_an_hour_of_1080p30_ts_fits_plans_budget_with_one_full_vcpu():
    hour = sizing.plan_decode_seconds(3600, 30, 1920, 1080, 1769)
    assert hour == pytest.approx(3600 * 30 * 1920 * 1080 * 2.5e-9)     # 560 s
    assert hour < sizing.PLAN_BUDGET_S
    # the template's old 1024 MB is 0.58 of a vCPU: the same hour is over the budget
    assert sizing.plan_decode_seconds(3600, 30, 1920, 1080, 1024) > sizing.PLAN_BUDGET_S
    # more memory buys nothing: the probe decodes on one thread
    assert sizing.plan_decode_seconds(3600, 30, 1920, 1080, 3538) == hour
    # outside Lambda (no function memory) the template's plan memory is assumed
    assert sizing.plan_decode_seconds(3600, 30, 1920, 1080) == hour
    # two hours of 1080p30 do not fit; two hours of 720p30 do
    assert sizing.plan_decode_seconds(7200, 30, 1920, 1080) > sizing.PLAN_BUDGET_S
    assert sizing.plan_decode_seconds(7200, 30, 1280, 720) < sizing.PLAN_BUDGET_S


def test_template_gives_plan_one_full_vcpu():
    from tests.integration.helpers import load_template
    template = load_template()
    plan = template["Resources"]["PlanFunction"]["Properties"]
    assert plan["MemorySize"] == sizing.PLAN_MEMORY_MB == 1769
    assert Settings().functions()["plan_memory_mb"] == 1769
    worker = template["Parameters"]["WorkerMemorySize"]["Default"]
    assert worker == Settings().worker_memory_mb == 3538


def _manifest(w, h, seconds=60.0, fps=30.0):
    return {"info": {"display_width": w, "display_height": h, "duration_s": seconds,
                     "avg_rate": fps, "n_packets": int(seconds * fps)},
            "chunks": [{}] * 3, "source_version": {"size": 50 * 2**20}}


def test_4k_needs_more_than_one_vcpu_worker_and_is_refused_at_1769_not_left_to_run_out():
    from blurfaces.errors import LimitError
    # peaks (bench/lambda_sizing.py, one thread): 528 MB at 720p and 823 MB at 1080p measured,
    # about 2,570 MB at 4K (2,194 MB measured before the look-ahead held 15 more frames)
    assert sizing.worker_memory_needed_mb(1280, 720) > 528 * 1.25 + 150
    assert 1769 > sizing.worker_memory_needed_mb(1920, 1080) > 823 * 1.25 + 150
    assert 3538 > sizing.worker_memory_needed_mb(3840, 2160) > 2570 * 1.25 + 150
    small = Settings.from_env({"WORKER_MEMORY_MB": "1769"})
    with pytest.raises(LimitError, match=r"3840x2160.*WorkerMemorySize is 1769 MB.*raise "
                                         r"WorkerMemorySize \(3538 fits up to 4K\)"):
        sizing.check_limits(_manifest(3840, 2160), small)
    assert sizing.check_limits(_manifest(1920, 1080), small)["worker_memory_needed_mb"] < 1769
    # the default worker takes 4K
    default = Settings.from_env({})
    assert default.worker_memory_mb == 3538
    assert sizing.check_limits(_manifest(3840, 2160), default)["frame"] == [3840, 2160]
