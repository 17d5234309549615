"""Progress output (catdog/_progress.py) as users see it: a live bar in terminals and notebooks,
one line per epoch where the output is not interactive (a pipe, a CI log), and a saved notebook
that keeps only each bar's last state."""
import io
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import catdog
from catdog import _progress, layers


def tiny_model():
    catdog.random.set_seed(1)
    inputs = catdog.Input((32, 32, 3))
    x = layers.GlobalAveragePooling2D()(inputs)
    model = catdog.Model(inputs, layers.Dense(1)(x))
    model.compile(optimizer=catdog.optimizers.Adam(1e-2),
                  loss=catdog.losses.BinaryCrossentropy(from_logits=True),
                  metrics=[catdog.metrics.BinaryAccuracy(threshold=0, name="accuracy")])
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (96, 32, 32, 3)).astype(np.float32)
    y = (np.arange(96) % 2).astype(np.float32)
    return model, x, y


@pytest.mark.parametrize("total", [1, 7, 30, 63, 100])
def test_bar_is_always_its_width(total):
    for current in range(total + 1):
        bar = _progress._bar(current, total, 30)
        assert len(bar) == 30, (current, total, bar)
        assert bar.count(">") == (1 if 0 < int(30 * current / total) and current < total else 0)
    assert _progress._bar(total, total, 30) == "=" * 30
    assert _progress._bar(0, total, 30) == "." * 30


def test_step_time_is_formatted_as_keras_does():
    assert _progress.format_step_time(2.4) == "2s/step"
    assert _progress.format_step_time(0.19) == "190ms/step"
    assert _progress.format_step_time(2e-5) == "20us/step"


def test_fit_prints_one_line_per_epoch_when_not_interactive(capsys):
    model, x, y = tiny_model()
    model.fit(x, y, batch_size=8, epochs=3, validation_data=(x[:16], y[:16]))
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "\r" not in out
    assert len(lines) == 3, out
    for i, line in enumerate(lines):
        assert line.startswith(f"Epoch {i + 1}/3 - 12/12 - "), line
        assert "/step - loss: " in line and " - accuracy: " in line and " - val_loss: " in line


def test_fit_redraws_one_line_in_a_terminal(monkeypatch):
    out = io.StringIO()
    out.isatty = lambda: True
    monkeypatch.setattr(sys, "stdout", out)
    bar = _progress.StepBar(4, "Epoch 1/1", verbose=1, min_interval=0)
    for i in range(1, 5):
        bar.update(i, {"loss": 1.0 / i})
    bar.finish({"loss": 0.25}, 2.0)
    text = out.getvalue()
    assert text.startswith("Epoch 1/1\n")
    assert text.count("\r") == 5 and text.endswith("\n") and text.count("\n") == 2
    last = text.split("\r")[-1]
    assert last.startswith("4/4 [" + "=" * 30 + "] - 2s 500ms/step - loss: 0.2500")


def test_verbose_2_and_0():
    out = io.StringIO()
    out.isatty = lambda: True
    bar = _progress.StepBar(4, "Epoch 2/5", verbose=2, file=out, min_interval=0)
    bar.update(1, {"loss": 1.0})
    bar.finish({"loss": 0.5}, 1.0)
    assert out.getvalue() == "Epoch 2/5 - 4/4 - 1s 250ms/step - loss: 0.5000\n"
    quiet = io.StringIO()
    bar = _progress.StepBar(4, "Epoch 1/1", verbose=0, file=quiet)
    bar.update(1, {"loss": 1.0})
    bar.finish({"loss": 0.5}, 1.0)
    assert quiet.getvalue() == ""


def test_download_bar_in_a_log_writes_a_few_lines():
    out = io.StringIO()
    bar = _progress.ProgressBar(1000, "w.h5", file=out)
    for _ in range(100):
        bar.update(10)
    bar.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and 2 <= len(lines) <= 5
    assert lines[-1].startswith("w.h5: [" + "=" * 30 + "] 100.0%")


def test_piped_fit_log_stays_short(tmp_path):
    """A script whose output goes to a pipe (CI, `| tee log`) gets one line per epoch."""
    script = tmp_path / "fit.py"
    script.write_text(textwrap.dedent("""
        import numpy as np, catdog
        from catdog import layers
        inputs = catdog.Input((32, 32, 3))
        model = catdog.Model(inputs, layers.Dense(1)(layers.GlobalAveragePooling2D()(inputs)))
        model.compile(optimizer="adam", loss=catdog.losses.BinaryCrossentropy(from_logits=True))
        x = np.zeros((64, 32, 32, 3), np.float32); y = np.zeros(64, np.float32)
        model.fit(x, y, batch_size=4, epochs=5)
    """))
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         cwd=tmp_path, timeout=120)
    assert run.returncode == 0, run.stderr
    assert len(run.stdout.splitlines()) == 5 and "\r" not in run.stdout, run.stdout


def test_saved_notebook_keeps_one_output_per_epoch(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    code = textwrap.dedent("""
        import numpy as np, catdog
        from catdog import layers
        inputs = catdog.Input((32, 32, 3))
        model = catdog.Model(inputs, layers.Dense(1)(layers.GlobalAveragePooling2D()(inputs)))
        model.compile(optimizer="adam", loss=catdog.losses.BinaryCrossentropy(from_logits=True))
        x = np.zeros((400, 32, 32, 3), np.float32); y = np.zeros(400, np.float32)
        import catdog._progress as p
        _orig = p.StepBar.__init__
        def fast(self, *a, **k):  # redraw at every step, the worst case for a saved notebook
            _orig(self, *a, **k); self.min_interval = 0
        p.StepBar.__init__ = fast
        history = model.fit(x, y, batch_size=4, epochs=2)
    """)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = nb.cells[0].outputs
    assert not [o for o in outputs if o.get("output_type") == "error"], outputs
    texts = [o.get("data", {}).get("text/plain", "") or o.get("text", "") for o in outputs]
    assert len(outputs) == 2, texts  # one display per epoch, each updated in place
    for i, t in enumerate(texts):
        assert t.startswith(f"Epoch {i + 1}/2\n100/100 [" + "=" * 30 + "] - "), t
    assert len(nbformat.writes(nb)) < 5000
