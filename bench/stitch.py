"""Cost of the stitch stage, and evidence that it copies the segments' packets (no re-encode).

  python -m bench.stitch [-n 5] [--chunks 6] [--input FILE | --size 1280x720 --seconds 60]
                         [--detect-size N] [--json OUT]

Runs stages.plan (with --chunks chunks, at least 4) and stages.worker for every chunk once,
in this process, to produce real segments; then, for n rounds: the baseline transcode of the
same input (a subprocess: what one full re-encode costs here), stages.stitch (full: video
join + audio mux + data rows + summary + publish) and video.stitch alone (the video join and
audio mux), both timed in this process (wall and this process's CPU). One untimed warm-up
stitch comes first (imports); its time is reported as first_call_s.

Reported: stitch seconds (median) and seconds per minute of output video, the same for the
mux alone, stitch / baseline transcode, stitch / the workers' total time (the time that went
into detect + mask + encode), and the packet check: every video packet of the output has the
same bytes, pts and keyframe flag as the corresponding packet of the segments in order, and
every audio packet the same bytes as the source's (when audio is copied). Video packets are
compared by their NAL units: the segments (NUT) carry H.264 in Annex B framing (start codes),
which the MP4 muxer rewrites to length prefixes, so raw packet bytes differ by that framing
only (reported too). Identical NAL units cannot come out of a decode + encode, so this shows
the segments are not re-encoded.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import resource
import sys
import time

from bench import common


def _cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def nal_units(data: bytes, length_size: int | None) -> list[bytes]:
    """The NAL units of one H.264 packet, whatever its framing: Annex B start codes (NUT
    segments) or length prefixes (MP4, `length_size` bytes from the avcC extradata). The
    MP4 muxer rewrites start codes into length prefixes, so only the NAL units themselves can
    be compared between a segment and the final file."""
    if data[:3] == b"\0\0\1" or data[:4] == b"\0\0\0\1" or not length_size:
        units, i, n = [], 0, len(data)
        starts = []
        while True:
            j = data.find(b"\0\0\1", i)
            if j < 0:
                break
            starts.append(j + 3)
            i = j + 3
        for k, st in enumerate(starts):
            end = starts[k + 1] - 3 if k + 1 < len(starts) else n
            units.append(data[st:end].rstrip(b"\0"))    # a 4-byte start code's leading zero
        return units
    units, i = [], 0
    while i + length_size <= len(data):
        size = int.from_bytes(data[i:i + length_size], "big")
        units.append(data[i + length_size:i + length_size + size])
        i += length_size + size
    return units


def _packets(path, kind="video"):
    """[(sha1 of bytes, sha1 of the NAL units, pts in seconds, keyframe)] of the first stream
    of `kind` (NAL units: video only; for audio the packet bytes again)."""
    import av
    out = []
    with av.open(str(path)) as c:
        streams = c.streams.video if kind == "video" else c.streams.audio
        if not streams:
            return out
        s = streams[0]
        ext = s.codec_context.extradata or b""
        length_size = (ext[4] & 3) + 1 if kind == "video" and ext[:1] == b"\1" and len(ext) > 4 \
            else None
        for p in c.demux(s):
            if not p.size:
                continue
            raw = bytes(p)
            h = hashlib.sha1(raw).hexdigest()
            if kind == "video":
                nh = hashlib.sha1()
                for u in nal_units(raw, length_size):
                    nh.update(len(u).to_bytes(4, "big"))
                    nh.update(u)
                nal = nh.hexdigest()
            else:
                nal = h
            out.append((h, nal, None if p.pts is None else float(p.pts * p.time_base),
                        bool(p.is_keyframe)))
    return out


def check_packets(segments, output, source, audio_copied) -> dict:
    seg = [p for s in segments for p in _packets(s)]
    out = _packets(output)
    n = min(len(seg), len(out))
    same_bytes = sum(seg[i][0] == out[i][0] for i in range(n))
    same_nal = sum(seg[i][1] == out[i][1] for i in range(n))
    same_key = sum(seg[i][3] == out[i][3] for i in range(n))
    dts = [abs(seg[i][2] - out[i][2]) for i in range(n)
           if seg[i][2] is not None and out[i][2] is not None]
    res = {"segment_video_packets": len(seg), "output_video_packets": len(out),
           "video_packets_raw_bytes_identical": same_bytes,
           "video_packets_nal_units_identical": same_nal,
           "video_keyframe_flags_identical": same_key,
           "video_pts_max_abs_diff_s": round(max(dts), 9) if dts else None,
           "video_identical": len(seg) == len(out) == same_nal == same_key}
    if audio_copied:
        a_src, a_out = _packets(source, "audio"), _packets(output, "audio")
        k = min(len(a_src), len(a_out))
        same = sum(a_src[i][0] == a_out[i][0] for i in range(k))
        res.update({"source_audio_packets": len(a_src), "output_audio_packets": len(a_out),
                    "audio_packets_bytes_identical": same,
                    "audio_identical": len(a_src) == len(a_out) == same})
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=5, help="stitch/baseline rounds (default 5)")
    ap.add_argument("--chunks", type=int, default=6, help="chunks to plan (>= 4; default 6)")
    common.add_clip_args(ap, "1280x720", 60.0)
    ap.add_argument("--detect-size", type=int, default=None,
                    help="detector size for making the segments (default: blurfaces' 640; "
                         "smaller makes them faster, the stitch does not depend on it)")
    ap.add_argument("--baseline", choices=("own", "harness"), default="own")
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args(argv)
    if a.chunks < 4:
        raise SystemExit("--chunks must be at least 4")

    from blurfaces import stages, storage
    from blurfaces.options import Options
    from blurfaces.outputs import output_names
    from blurfaces.video import VideoInfo, stitch as mux_video

    src = common.clip_from_args(a)
    facts = common.video_facts(src)
    cpus = common.available_cpus()
    work = common.work_dir("stitch-")
    load_before = os.getloadavg()
    machine = common.machine_info()
    notes = []
    try:
        opts = Options(**({"detect_size": a.detect_size} if a.detect_size else {}))
        seg_work = os.path.join(work, "work")
        out_dir = os.path.join(work, "out")
        os.makedirs(out_dir)
        outputs = output_names(os.path.join(out_dir, "stitched.mp4"))
        t0 = time.perf_counter()
        manifest = stages.plan(str(src), outputs=outputs, options=opts, work=seg_work,
                               chunks=a.chunks)
        plan_s = time.perf_counter() - t0
        n_chunks = len(manifest["chunks"])
        common.log(f"input {src}: {facts['frames']} frames, {facts['duration_s']} s; "
                   f"{n_chunks} chunks; running the workers once ({cpus} threads each)")
        worker_s = []
        for c in manifest["chunks"]:
            t = time.perf_counter()
            stages.worker(manifest, c["index"], threads=cpus)
            worker_s.append(round(time.perf_counter() - t, 3))
            common.log(f"worker {c['index']}: {worker_s[-1]:.2f} s")
        store = storage.get_storage(seg_work)
        segs = [store.local_path(stages.segment_uri(seg_work, c["index"]))
                for c in manifest["chunks"] if c["frames_expected"]]
        info = VideoInfo.from_dict(manifest["info"])

        t = time.perf_counter()
        stages.stitch(manifest)                              # warm-up: imports, page cache
        first_call = time.perf_counter() - t

        runs = {"baseline": [], "stitch": [], "mux_only": []}
        base_out = os.path.join(work, "baseline.mp4")
        mux_out = os.path.join(work, "mux_only.mp4")
        for i in range(a.n):
            for p in (base_out, mux_out):
                if os.path.exists(p):
                    os.remove(p)
            b = common.timed(common.baseline_cmd(src, base_out, a.baseline))
            runs["baseline"].append(b)
            c0, t = _cpu_self(), time.perf_counter()
            summary = stages.stitch(manifest)
            runs["stitch"].append({"wall_s": round(time.perf_counter() - t, 4),
                                   "cpu_s": round(_cpu_self() - c0, 4),
                                   "paired_baseline_wall_s": b["wall_s"]})
            c0, t = _cpu_self(), time.perf_counter()
            mux = mux_video(segs, str(src), info, mux_out, keep_audio=opts.keep_audio)
            runs["mux_only"].append({"wall_s": round(time.perf_counter() - t, 4),
                                     "cpu_s": round(_cpu_self() - c0, 4),
                                     "paired_baseline_wall_s": b["wall_s"]})
            common.log(f"round {i + 1}/{a.n}: baseline {b['wall_s']:.2f} s, stitch "
                       f"{runs['stitch'][-1]['wall_s']:.3f} s, mux only "
                       f"{runs['mux_only'][-1]['wall_s']:.3f} s")
        audio_copied = mux.get("audio_mode") == "copy"
        check = check_packets(segs, outputs["video"], src, audio_copied)
        check["mux_only_output"] = check_packets(segs, mux_out, src, audio_copied)
        out_facts = common.video_facts(outputs["video"])
        seg_bytes = sum(os.path.getsize(s) for s in segs)
        load_after = os.getloadavg()
    finally:
        common.rmtree(work)

    minutes = facts["duration_s"] / 60.0
    def med(k):
        return common.median(r["wall_s"] for r in runs[k])
    st, mx, bs = med("stitch"), med("mux_only"), med("baseline")
    res = {"benchmark": "stitch", "input": facts, "n": a.n, "chunks": n_chunks,
           "segments": len(segs), "segment_bytes": seg_bytes, "output": out_facts,
           "audio_mode": mux.get("audio_mode"), "plan_s": round(plan_s, 3),
           "worker_s": worker_s, "workers_total_s": round(sum(worker_s), 3),
           "first_call_s": round(first_call, 3),
           "stitch": {"median_wall_s": st, "median_cpu_s": common.median(
               r["cpu_s"] for r in runs["stitch"]), "s_per_min_output": round(st / minutes, 4),
               "wall_spread": common.spread(r["wall_s"] for r in runs["stitch"]),
               "stages_timings_last_run": summary.get("timings")},
           "mux_only": {"median_wall_s": mx, "median_cpu_s": common.median(
               r["cpu_s"] for r in runs["mux_only"]), "s_per_min_output": round(mx / minutes, 4)},
           "baseline": {"kind": a.baseline, **common.summarize(runs["baseline"],
                                                               facts["frames"])},
           "ratios": {"stitch_over_baseline_transcode": round(st / bs, 4),
                      "stitch_over_workers_total": round(st / sum(worker_s), 4),
                      "mux_only_over_baseline_transcode": round(mx / bs, 4)},
           "packet_check": check, "runs": runs, "machine": machine,
           "loadavg_before": [round(x, 2) for x in load_before],
           "loadavg_after": [round(x, 2) for x in load_after], "notes": notes}
    lw = common.load_warning(load_before, load_after)
    if lw:
        notes.append(lw)
    common.write_json(a.json, res)

    print(f"{facts['frames']} frames, {facts['duration_s']:.1f} s, {n_chunks} chunks, "
          f"{len(segs)} segments ({seg_bytes / 1e6:.1f} MB) | medians of {a.n}")
    print(f"stitch   {st:.3f} s = {st / minutes:.3f} s per minute of output "
          f"(first call {first_call:.3f} s)")
    print(f"mux only {mx:.3f} s = {mx / minutes:.3f} s per minute of output")
    print(f"baseline transcode {bs:.2f} s; workers total {sum(worker_s):.2f} s | stitch / "
          f"transcode {st / bs:.4f}, stitch / workers {st / sum(worker_s):.4f}")
    print(f"packets: video {check['video_packets_nal_units_identical']}/"
          f"{check['segment_video_packets']} with identical NAL units (raw bytes "
          f"{check['video_packets_raw_bytes_identical']}: MP4 length prefixes replace the "
          f"segments' start codes; output has "
          f"{check['output_video_packets']}), keyframes "
          f"{check['video_keyframe_flags_identical']}, max |dpts| "
          f"{check['video_pts_max_abs_diff_s']} s -> "
          f"{'NO RE-ENCODE (identical)' if check['video_identical'] else 'DIFFERENT'}"
          + (f"; audio {check['audio_packets_bytes_identical']}/"
             f"{check['source_audio_packets']} identical" if audio_copied else
             f"; audio mode {mux.get('audio_mode')}"))
    for n in notes:
        print(f"note: {n}")
    return 0 if check["video_identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
