"""What plan's budget lets through when it must decode every frame (MPEG-TS/PS, AVI, raw
streams: no container index it can trust), against the issue's figures: an hour of 1080p30
was refused by a plan function of 1024 MB (a share of one vCPU); with one full vCPU it fits,
and a video that does not fit is refused with the longest part that does."""
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
    import pathlib
    import yaml

    class Loader(yaml.SafeLoader):
        pass
    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    root = pathlib.Path(__file__).resolve().parents[1]
    template = yaml.load((root / "template.yaml").read_text(), Loader=Loader)
    plan = template["Resources"]["PlanFunction"]["Properties"]
    assert plan["MemorySize"] == sizing.PLAN_MEMORY_MB == 1769
    assert Settings().functions()["plan_memory_mb"] == 1769
