"""model.summary() shows the lab's parameter counts exactly (DESIGN.md)."""
import catdog
from catdog import layers


def lab_model():
    base = catdog.applications.MobileNetV2(input_shape=(160, 160, 3), include_top=False, weights=None)
    inputs = catdog.Input((160, 160, 3))
    x = catdog.applications.mobilenet_v2.preprocess_input(inputs)
    x = base(x, training=False)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(x)
    return base, catdog.Model(inputs, layers.Dense(1)(x))


def lines(model):
    out = []
    model.summary(print_fn=out.append)
    return out


def test_summary_frozen_and_fine_tuning_counts():
    base, model = lab_model()
    assert "Total params: 2,257,984" in lines(base)
    assert "Trainable params: 2,223,872" in lines(base)
    assert "Non-trainable params: 34,112" in lines(base)
    base.trainable = False
    text = lines(model)
    assert "Total params: 2,259,265" in text and "Trainable params: 1,281" in text
    assert any("(None, 5, 5, 1280)" in l and "2,257,984" in l for l in text)
    base.trainable = True
    for layer in base.layers[:100]:
        layer.trainable = False
    text = lines(model)
    assert "Trainable params: 1,862,721" in text and "Non-trainable params: 396,544" in text
    assert len(base.layers) == 154 and base.layers[100].name == "block_11_expand_relu"


def _shape(layer):
    return [None, *layer.output_shape]


def test_layer_list_and_counts_match_keras_structure():
    """Every alpha's parameter counts, the alpha-1.0 layer list (names, classes, output shapes)
    with and without top, and the paddings at 75x75, against Keras (structure.json)."""
    import json
    from conftest import FIXTURES

    ref = json.loads((FIXTURES / "structure.json").read_text())
    for alpha, want in ref["no_top_160_counts"].items():
        base = catdog.applications.MobileNetV2(input_shape=(160, 160, 3), alpha=float(alpha),
                                               include_top=False, weights=None)
        trainable = sum(w.size for w in base.trainable_weights)
        assert (base.count_params(), trainable, len(base.layers)) == (
            want["total"], want["trainable"], want["n_layers"]), alpha
    base = catdog.applications.MobileNetV2(input_shape=(160, 160, 3), include_top=False, weights=None)
    got = [[l.name, type(l).__name__, _shape(l)] for l in base.layers]
    want = ref["a100_160_no_top_layers"]
    want[0][0] = "input_1"  # Keras 3 calls it input_layer; the weight files say input_1
    assert got == [[n, c, list(s)] for n, c, s in want]
    top = catdog.applications.MobileNetV2(input_shape=(224, 224, 3), include_top=True, weights=None)
    got = [[l.name, type(l).__name__, _shape(l)] for l in top.layers]
    want = ref["a100_224_top_layers"]
    want[0][0] = "input_1"
    assert got == [[n, c, list(s)] for n, c, s in want]
    assert top.count_params() == ref["a100_224_top_counts"]["total"] == 3_538_984
    b75 = catdog.applications.MobileNetV2(input_shape=(75, 75, 3), alpha=0.5, include_top=False, weights=None)
    for name, pad in ref["paddings_75"]["zero_padding2d"].items():
        assert [list(p) for p in b75.get_layer(name).padding] == pad
    assert b75.get_layer("Conv1").pads == (1, 1, 1, 1)
    b160 = catdog.applications.MobileNetV2(input_shape=(160, 160, 3), include_top=False, weights=None)
    assert b160.get_layer("Conv1").pads == (0, 1, 0, 1)


def test_summary_show_trainable_marks_layers_as_keras():
    """keras/src/utils/summary_utils.py: a Trainable column, Y / N for layers with weights and
    - for those without."""
    inputs = catdog.Input((8, 8, 3))
    conv = catdog.layers.Conv2D(2, 3, name="conv")
    conv.trainable = False
    out = catdog.layers.Dense(1, name="head")(catdog.layers.GlobalAveragePooling2D(name="gap")(conv(inputs)))
    model = catdog.Model(inputs, out)
    lines = []
    model.summary(print_fn=lines.append, show_trainable=True)
    assert "Trainable" in lines[2]
    row = {line.split()[0]: line.split()[-1] for line in lines if line.startswith(" ")}
    assert row["conv"] == "N" and row["head"] == "Y" and row["gap"] == "-"
