"""The engine's layering, checked on its sources (csrc/): kernels see no graph, the planner and
executor never name a layer kind, and every kind the engine lists is one registration line."""
import re
from pathlib import Path

from catdog import _engine

CSRC = Path(__file__).resolve().parents[1] / "csrc"
RUNNER = ["model/plan.c", "model/exec.c", "model/states.c", "model/buffers.c"]


def test_kernels_do_not_include_the_graph():
    for path in sorted((CSRC / "nn").glob("*.[ch]")):
        includes = re.findall(r'#include "([^"]+)"', path.read_text())
        assert not [i for i in includes if i.startswith("model/")], path.name
        assert not re.search(r"\bcd_graph\s*\*", path.read_text()), f"{path.name} takes a cd_graph"


def code(text):
    """C source without its comments."""
    return re.sub(r"/\*.*?\*/|//[^\n]*", "", text, flags=re.S)


def test_planner_and_executor_never_name_a_kind():
    kinds = _engine.layer_kinds()
    for rel in RUNNER:
        text = code((CSRC / rel).read_text())
        for kind in kinds:
            assert not re.search(rf"\b{kind}\b", text), f"{rel} names {kind}"
        assert "CD_LAYER_" not in text, f"{rel} uses a kind enum"
        assert not re.search(r"&cd_\w+_ops\b", text), f"{rel} compares with a kind's ops table"
        assert not re.search(r"strcmp\([^;]*ops->name", text), f"{rel} compares kind names"


def test_every_kind_is_one_registration_line():
    table = (CSRC / "nn" / "kinds.c").read_text()
    entries = re.findall(r"X\((cd_\w+_ops)\)", table)
    assert len(entries) == len(set(entries)) == len(_engine.layer_kinds())
    for ops in entries:  # defined once, in one nn/ file
        defined = [p.name for p in (CSRC / "nn").glob("*.c")
                   if re.search(rf"^const cd_layer_ops {ops} = \{{", p.read_text(), re.M)]
        assert len(defined) == 1, (ops, defined)
