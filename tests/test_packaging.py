"""What a newcomer meets before the engine: running from the clone's root, an unbuilt source
folder, the lab's entry point, a piped log. (The wheel, the source archive and the Python
matrix are checked by scripts/check_dist.sh and .ci/run.)"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import catdog
from conftest import needs_shared_data, needs_shared_weights, shared_dir

ROOT = Path(__file__).resolve().parents[1]
ENTRY = Path(sys.executable).parent / "catdog-lab"


def test_unbuilt_source_folder_says_so(tmp_path):
    """`import catdog` where the source folder shadows the installed package names the cause."""
    src = tmp_path / "catdog"
    shutil.copytree(Path(catdog.__file__).parent, src,
                    ignore=shutil.ignore_patterns("_engine*.so", "__pycache__"))
    run = subprocess.run([sys.executable, "-c", "import catdog"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode != 0
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: catdog's C engine is not built in"), run.stderr
    assert "pip install -e ." in last and "circular import" not in last


def test_lab_entry_point_runs_from_the_clone_root():
    """The README's lab command runs `catdog-lab` from the root, where catdog/ is unbuilt."""
    assert ENTRY.exists(), f"{ENTRY} was not installed (pyproject [project.scripts])"
    run = subprocess.run([str(ENTRY), "--help"], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert "--fine-tune-epochs" in run.stdout


@needs_shared_data
@needs_shared_weights
def test_lab_from_the_root_logs_one_line_per_epoch(tmp_path):
    """A piped lab run (the README command in CI, `| tee`) keeps its log short: no redraws."""
    env = dict(os.environ, CATDOG_SHARED=str(shared_dir()), CATDOG_HOME=str(tmp_path / "home"),
               MPLBACKEND="Agg")
    run = subprocess.run([str(ENTRY), "--epochs", "2", "--fine-tune-epochs", "1", "--subset", "40",
                          "--output", str(tmp_path / "out")], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "\r" not in run.stdout
    epochs = [line for line in run.stdout.splitlines() if line.startswith("Epoch ")]
    assert [line.split(" - ")[0] for line in epochs] == ["Epoch 1/2", "Epoch 2/2",
                                                     "Epoch 2/3", "Epoch 3/3"], \
        run.stdout
    assert len(run.stdout.splitlines()) < 60, run.stdout
    assert (tmp_path / "out" / "metrics.json").exists()
