"""Hostile image files against the decoder (issue 23), in the library and in C under
AddressSanitizer + UndefinedBehaviorSanitizer:

- the fuzz reproducers of stb_image 2.27's heap out-of-bounds read (progressive JPEG Huffman
  decoding) and shift UB, from ../shared/fuzz: a clean ValueError, and no sanitizer report;
- the Huffman symbol lookup's bounds, on crafted tables (csrc/fuzz/test_huff_bounds.c): the
  read the reproducer hit depended on uninitialised memory, so its file alone proves little;
- JPEGs cut short anywhere after their frame header: refused, never "decoded" from memory the
  decoder did not write (the one-line patch in csrc/third_party/stb/README.md).

The C checks build with $CC (default gcc, else clang) and skip, saying why, where no compiler
with -fsanitize=address,undefined is at hand. Leak checking is left to the fuzz target."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import catdog  # noqa: F401
from catdog import _engine


def shared_dir() -> Path:
    env = os.environ.get("CATDOG_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared"


ROOT = Path(__file__).resolve().parents[1]
CSRC = ROOT / "csrc"
FIX = Path(__file__).resolve().parent / "fixtures" / "data"
REPRODUCERS = shared_dir() / "fuzz"
REPRODUCER_NAMES = ["stb-2.27-huff-oob-read.jpg", "stb-2.27-shift-ub.jpg"]
SAN = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer"]
SAN_ENV = {"ASAN_OPTIONS": "detect_leaks=0:halt_on_error=1",
           "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}
REPORT_MARKS = ("runtime error:", "AddressSanitizer", "UndefinedBehaviorSanitizer")

needs_reproducers = pytest.mark.skipif(
    not REPRODUCERS.is_dir(), reason=f"../shared is absent: no fuzz reproducers at {REPRODUCERS}")


def reproducer(name):
    path = REPRODUCERS / name
    if not path.is_file():
        pytest.skip(f"../shared/fuzz has no {name}")
    return path


def jpeg_cuts(data):
    """Every prefix of a JPEG that ends after its frame header (SOF0/SOF2) and before its
    end: what an interrupted download or copy leaves."""
    sof = min(i for i in (data.find(b"\xff\xc0"), data.find(b"\xff\xc2")) if i >= 0)
    frame_end = sof + 2 + int.from_bytes(data[sof + 2:sof + 4], "big")
    return [data[:n] for n in range(frame_end, len(data))]


# ---- in the library --------------------------------------------------------------------------
@needs_reproducers
@pytest.mark.parametrize("name", REPRODUCER_NAMES)
def test_fuzz_reproducer_is_refused_cleanly(name):
    path = reproducer(name)
    with pytest.raises(ValueError, match="corrupt or unsupported image data"):
        _engine.decode_image(path.read_bytes())
    with pytest.raises(ValueError, match="corrupt or unsupported image data"):
        _engine.decode_file(str(path))


@pytest.mark.parametrize("name", ["baseline.jpg", "progressive.jpg", "subsampled.jpg", "gray.jpg"])
def test_jpeg_cut_short_is_refused(name):
    data = (FIX / name).read_bytes()
    assert _engine.decode_image(data).shape[:2] == (48, 64)
    cuts = jpeg_cuts(data)
    decoded = []
    for cut in cuts:
        try:
            _engine.decode_image(cut)
            decoded.append(len(cut))
        except ValueError:
            pass
    assert not decoded, f"{name}: {len(decoded)} of {len(cuts)} truncations decoded, e.g. {decoded[:5]} bytes"


# ---- in C, under AddressSanitizer + UndefinedBehaviorSanitizer -------------------------------
def sanitizing_compiler(tmp):
    if not (CSRC / "fuzz" / "replay_main.c").is_file():
        pytest.skip(f"the C sources are not at {CSRC} (tests run outside the clone)")
    for cc in [os.environ.get("CC"), "gcc", "clang"]:
        if not cc or not shutil.which(cc.split()[0]):
            continue
        probe = tmp / "probe.c"
        probe.write_text("int main(void) { return 0; }\n")
        r = subprocess.run([*cc.split(), *SAN, str(probe), "-o", str(tmp / "probe")],
                           capture_output=True, text=True)
        if r.returncode == 0 and subprocess.run([str(tmp / "probe")], env=clean_env()).returncode == 0:
            return cc.split()
    pytest.skip("no C compiler here builds and runs with -fsanitize=address,undefined")


def clean_env():
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    env.update(SAN_ENV)
    return env


@pytest.fixture(scope="module")
def sanitized(tmp_path_factory):
    """{name: path} of the sanitized replay driver (the fuzz target without libFuzzer) and the
    Huffman bounds test, built once from csrc/."""
    tmp = tmp_path_factory.mktemp("sanitized")
    cc = sanitizing_compiler(tmp)
    common = [*cc, "-std=c11", "-D_GNU_SOURCE", "-g", "-O1", *SAN, f"-I{CSRC}"]
    targets = {
        "replay": [str(CSRC / p) for p in ("fuzz/fuzz_decode.c", "fuzz/replay_main.c", "data/decode.c",
                                           "data/resize.c", "core/error.c")] + ["-lm"],
        "huff_bounds": [str(CSRC / "fuzz" / "test_huff_bounds.c")],
    }
    out = {}
    for name, sources in targets.items():
        exe = tmp / name
        r = subprocess.run([*common, *sources, "-o", str(exe)], capture_output=True, text=True)
        assert r.returncode == 0, f"building {name} failed:\n{r.stderr[-3000:]}"
        out[name] = exe
    return out


def run_sanitized(exe, *args):
    r = subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, env=clean_env(),
                       timeout=600)
    report = [m for m in REPORT_MARKS if m in r.stderr]
    assert r.returncode == 0 and not report, (
        f"{exe.name} exited {r.returncode}, sanitizer marks {report}:\n{r.stderr[-4000:]}")
    return r.stdout


def test_huffman_symbol_index_is_range_checked(sanitized):
    out = run_sanitized(sanitized["huff_bounds"])
    assert "test_huff_bounds: ok" in out


@needs_reproducers
@pytest.mark.parametrize("name", REPRODUCER_NAMES)
def test_fuzz_reproducer_is_clean_under_sanitizers(sanitized, name):
    path = reproducer(name)
    out = run_sanitized(sanitized["replay"], path)
    assert f"{path}: " in out and ": refused: corrupt or unsupported image data" in out, out


def test_fixtures_regressions_and_cuts_are_clean_under_sanitizers(sanitized, tmp_path):
    files = sorted(FIX.glob("*.jpg")) + sorted(FIX.glob("*.png")) + sorted((FIX / "fuzz_regressions").iterdir())
    for name in ("baseline.jpg", "progressive.jpg"):
        cuts = jpeg_cuts((FIX / name).read_bytes())
        for i in range(0, len(cuts), 37):  # a spread of cut points, each its own file
            p = tmp_path / f"{name}.{len(cuts[i])}"
            p.write_bytes(cuts[i])
            files.append(p)
    out = run_sanitized(sanitized["replay"], *files).splitlines()
    assert len(out) == len(files)
    verdicts = dict(line.split(": ", 1) for line in out)
    for f in files:
        line = verdicts[str(f)]
        should_decode = f.parent == FIX
        assert ("decoded" in line) == should_decode, f"{f.name}: {line}"
