"""Options have one definition each (options.SPECS): the record, the CLI flags, the
environment layer and the API's defaults all follow it."""
from __future__ import annotations

import inspect

import pytest

from blurfaces import OptionError, api, cli
from blurfaces.options import (BY_NAME, OPTION_SPECS, QUALITY, SPECS, Execution, Options,
                               from_env, layered, resolve, validate_execution, with_sidecar)


def test_record_defaults_are_the_specs_defaults():
    o = Options()
    for s in OPTION_SPECS:
        assert getattr(o, s.name) == s.default, s.name
    assert set(o.to_dict()) == {s.name for s in OPTION_SPECS}
    # None: the quality preset's value, read through a property, never stored
    assert o.threshold is None and o.score_threshold == QUALITY[o.quality]["threshold"]
    assert o.reuse is None and o.reuse_s == QUALITY[o.quality]["reuse_s"]
    assert o.detect_size is None and o.whole_size == QUALITY[o.quality]["detect_size"] == 384


def test_an_explicit_detect_size_is_used_even_where_it_equals_the_old_default():
    """`--detect-size 640` with the balanced preset runs the whole-frame pass at 640 px (it
    was read as "not given" and ran at the preset's 384); unset, each preset's size."""
    from blurfaces import stages

    assert Options(detect_size=640).whole_size == 640
    assert Options(quality="fast").whole_size == Options(quality="max").whole_size == 640
    assert stages._detector(Options(detect_size=640), 1, False).detect_size == 640
    assert stages._detector(Options(), 1, False).detect_size == 384
    assert Options.from_dict(Options(detect_size=640).to_dict()).detect_size == 640
    assert Options.from_dict(Options().to_dict()).detect_size is None


def test_the_whole_frame_pass_grows_with_frames_over_1920_px_unless_detect_size_is_given():
    """With the fine pass (balanced, max), the whole-frame pass's size is at least a fifth
    of the frame's longer side, rounded up to a multiple of 32: 1080p and under (portrait too)
    as before, 1921 px 416, 2.7K 544, 1440p 512, 4K 768. `--detect-size` is used as given; `fast` (no fine pass: the
    tiles see small faces) keeps its 640. The worker's detector is built for its frame."""
    from blurfaces import stages

    o = Options()
    for (w, h), size in {(640, 360): 384, (1280, 720): 384, (1920, 1080): 384,
                         (1080, 1920): 384, (2704, 1520): 544, (2560, 1440): 512,
                         (1921, 1080): 416, (3840, 2160): 768, (2160, 3840): 768}.items():
        assert o.whole_size_for(w, h) == size, (w, h)
    assert Options(quality="max").whole_size_for(3840, 2160) == 768
    assert Options(quality="max").whole_size_for(1920, 1080) == 640
    assert Options(quality="fast").whole_size_for(3840, 2160) == 640
    assert Options(detect_size=384).whole_size_for(3840, 2160) == 384
    assert stages._detector(o, 1, False, (3840, 2160)).detect_size == 768
    assert stages._detector(o, 1, False, (1920, 1080)).detect_size == 384

    class Info:         # what the worker's detector reads of the probe
        display_width, display_height, mean_fps = 2560, 1440, 30.0

    assert stages._chunk_detector(o, Info(), 1).detect_size == 512


def test_the_record_is_a_typed_frozen_dataclass():
    import dataclasses
    import typing
    hints = typing.get_type_hints(Options)
    assert hints["threshold"] == typing.Optional[float]
    assert hints["reuse"] == typing.Optional[bool] and hints["detect_every"] is int
    assert hints["detect_size"] == typing.Optional[int]
    with pytest.raises(dataclasses.FrozenInstanceError):
        Options().threshold = 0.2
    assert Options.from_dict(Options(data_format="tsv,csv").to_dict()) == \
        Options(data_format=("tsv", "csv"))


def test_api_signature_defaults_match_the_specs():
    params = inspect.signature(api.blur_faces).parameters
    for s in SPECS:
        p = params[s.name]
        # None in the API means "the option's default" for the non-nullable ones.
        assert p.default in (s.default, None) or (s.kind == "formats" and
                                                 p.default == ",".join(s.default)), s.name


def test_every_spec_has_a_cli_flag_and_an_env_name():
    parser = cli.build_parser()
    sub = parser._subparsers._group_actions[0].choices["anonymize"]
    flags = {o for a in sub._actions for o in a.option_strings}
    for s in SPECS:
        assert s.flag in flags, s.name
        assert s.env == "BLURFACES_" + s.name.upper()


def test_layering_env_then_command_line():
    env = {"BLURFACES_MASK": "mosaic", "BLURFACES_CRF": "23", "BLURFACES_TRACK": "false",
           "BLURFACES_OPTIONS": '{"hold": 1.0, "mask": "rectangle"}',
           "BLURFACES_WORKERS": "3"}
    got = from_env(env)
    assert got == {"hold": 1.0, "mask": "mosaic", "crf": 23, "track": False, "workers": 3}
    options, execution = layered(got, {"crf": 18})
    assert (options.mask, options.crf, options.track, options.hold) == ("mosaic", 18, False, 1.0)
    assert execution == Execution(workers=3)
    # chunks and chunk_seconds: the later layer's choice wins
    _, execution = layered({"chunk_seconds": 5.0}, {"chunks": 4})
    assert (execution.chunks, execution.chunk_seconds) == (4, None)


SIDECARS = [{"quality": "fast"}, {"quality": "max", "mask": "mosaic"}, {"threshold": 0.6},
            {"chunks": 3}, {"draw_heatmap": False}, {}]
GIVEN = [{}, {"threshold": 0.35}, {"quality": "fast"}, {"chunk_seconds": 4.0, "crf": 30}]


@pytest.mark.parametrize("sidecar", SIDECARS)
@pytest.mark.parametrize("given", GIVEN)
@pytest.mark.parametrize("layout", [False, True])
def test_a_sidecar_over_resolved_options_equals_resolving_with_it(sidecar, given, layout):
    """Batch and watch resolve the options once, then lay each video's sidecar over them;
    the Lambdas resolve everything at once. Both must give the same record."""
    env = {"BLURFACES_MASK": "rectangle", "BLURFACES_HOLD": "1.0"}
    once = resolve(given, layout=layout, environ=env, sidecar=sidecar)
    later = with_sidecar(*resolve(given, layout=layout, environ=env), sidecar)
    assert once == later


def test_sidecar_quality_fast_gives_the_same_threshold_locally_and_on_aws(tmp_path,
                                                                          monkeypatch):
    """Issue 17's defect: a sidecar {"quality": "fast"} gave threshold 0.3 through
    batch/watch (the preset's value was filled in before the sidecar was laid over it) and
    0.4 through the AWS path. Both now follow the sidecar's preset (0.4), and a threshold
    given explicitly below the sidecar still wins in both."""
    import json as _json

    from blurfaces import jobs, runner
    from blurfaces.aws import job_options
    for k in [s.env for s in SPECS] + ["BLURFACES_OPTIONS"]:
        monkeypatch.delenv(k, raising=False)
    layout = jobs.Layout(tmp_path)
    layout.ensure()
    video = tmp_path / "incoming" / "v.mp4"
    video.write_bytes(b"not decoded: the run is replaced below")
    seen = []

    def fake_run(source, *, options, **kw):
        seen.append(options)
        raise OptionError("stop here")

    monkeypatch.setattr(runner, "run", fake_run)
    for argv, want in (([], 0.4), (["--threshold", "0.35"], 0.35)):
        (tmp_path / "incoming" / ("v.mp4" + jobs.SIDECAR)).write_text(
            _json.dumps({"quality": "fast"}))
        a = cli.build_parser().parse_args(["watch", str(tmp_path), *argv])
        options, execution = cli._job_args(a, drop_folder=True)
        seen.clear()
        r = jobs.run_job(str(video), options, layout=layout, execution=execution,
                         resume=False)
        assert r.status == "failed" and len(seen) == 1
        local = seen[0]
        aws, _ = job_options({"threshold": 0.35} if argv else None, {"quality": "fast"})
        assert (local.quality, local.score_threshold) == ("fast", want)
        assert (aws.quality, aws.score_threshold) == ("fast", want)
        assert local == aws


def test_options_that_do_nothing_with_the_others_are_refused(monkeypatch, capsys):
    """`reuse` did nothing with --quality fast (silently dropped): now it is refused, in
    every layer, with one line naming the option; --no-reuse is accepted everywhere."""
    for q in ("fast", "max"):
        with pytest.raises(OptionError, match=f"reuse does nothing with quality {q}"):
            Options(quality=q, reuse=True)
        assert Options(quality=q, reuse=False).reuse_s is None
        assert Options(quality=q).reuse_s is None
    assert Options(reuse=True).reuse_s == QUALITY["balanced"]["reuse_s"]
    assert Options(reuse=False).reuse_s is None
    with pytest.raises(OptionError, match="reuse does nothing"):
        resolve({"quality": "fast"}, environ={"BLURFACES_REUSE": "true"})
    with pytest.raises(OptionError, match="detect_every 2 does nothing without tracking"):
        Options(detect_every=2, track=False)            # was: silently every frame
    assert Options(track=False).detect_step == 1 and Options(detect_every=3).detect_step == 3
    assert cli.main(["anonymize", "x.mp4", "--quality", "fast", "--reuse"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "reuse does nothing with quality fast" in err[0]


@pytest.mark.parametrize("env,needle", [
    ({"BLURFACES_CRF": "abc"}, "BLURFACES_CRF"),
    ({"BLURFACES_TRACK": "maybe"}, "BLURFACES_TRACK"),
    ({"BLURFACES_OPTIONS": "[1]"}, "JSON object"),
])
def test_bad_environment_is_named(env, needle):
    with pytest.raises(OptionError, match=needle):
        from_env(env)


def test_bounds_come_from_the_specs():
    for name, bad in (("detect_size", 100000), ("detect_size", 100), ("crf", 52),
                      ("mask_scale", float("nan")), ("resolution", 100000),
                      ("preset", "nonsense"), ("track", "yes")):
        with pytest.raises(OptionError, match=name):
            Options(**{name: bad})
    with pytest.raises(OptionError, match="unknown option"):
        Options.from_dict({"blurriness": 3})
    with pytest.raises(OptionError, match="not both"):
        validate_execution(chunks=2, chunk_seconds=3.0)
    assert BY_NAME["detect_size"].check(3840) == 3840


def test_cli_reads_the_environment(short_clip, monkeypatch, capsys, private_tmp):
    monkeypatch.setenv("BLURFACES_DETECT_SIZE", "320")
    monkeypatch.setenv("BLURFACES_MASK", "rectangle")
    monkeypatch.setenv("BLURFACES_WORKERS", "1")
    assert cli.main(["anonymize", str(short_clip), "-q", "--json", "--crf", "30"]) == 0
    import json
    summary = json.loads(open(short_clip.parent / "clip_blurred_summary.json").read())
    assert summary["options"]["mask"] == "rectangle"
    assert summary["options"]["detect_size"] == 320 and summary["options"]["crf"] == 30
    assert summary["timings"]["workers"] == 1
    capsys.readouterr()
