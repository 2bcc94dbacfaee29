"""Options have one definition each (options.SPECS): the record, the CLI flags, the
environment layer and the API's defaults all follow it."""
from __future__ import annotations

import inspect

import pytest

from blurfaces import OptionError, api, cli
from blurfaces.options import (BY_NAME, OPTION_SPECS, QUALITY, SPECS, Options, from_env,
                               layered, validate_execution)


def test_record_defaults_are_the_specs_defaults():
    o = Options()
    for s in OPTION_SPECS:
        want = list(s.default) if s.kind == "formats" else s.default
        if s.name == "threshold":                   # None: the quality preset's
            want = QUALITY[o.quality]["threshold"]
        assert getattr(o, s.name) == want, s.name
    assert set(o.to_dict()) == {s.name for s in OPTION_SPECS}


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
    assert execution == {"workers": 3, "chunk_seconds": None, "chunks": None}
    # chunks and chunk_seconds: the later layer's choice wins
    _, execution = layered({"chunk_seconds": 5.0}, {"chunks": 4})
    assert (execution["chunks"], execution["chunk_seconds"]) == (4, None)


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
