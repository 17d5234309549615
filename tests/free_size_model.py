"""The free-size model, written once for Keras and for catdog
(tests/fixtures/make_free_size_fixtures.py makes Keras's numbers with it;
tests/test_free_input_size.py checks catdog's)."""

SIZES = [(33, 33), (40, 40), (37, 50)]  # odd, even, non-square


def build(L, Input, Model, shape=(None, None, 3)):
    """The model on `shape` with layers from L (keras.layers or catdog.layers), Input, Model:
    "same" paddings that depend on the size's parity, a BN, a residual Add, GAP, Dense(1)."""
    inp = Input(shape)
    x = L.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="conv1")(inp)
    x = L.DepthwiseConv2D(5, strides=2, padding="same", use_bias=False, name="dw")(x)
    x = L.BatchNormalization(name="bn")(x)
    x = L.ReLU(name="relu")(x)
    p = L.MaxPooling2D(3, strides=2, padding="same", name="pool")(x)
    a = L.Conv2D(6, 3, padding="same", name="conv2")(p)
    b = L.Conv2D(6, 1, padding="valid", name="proj")(p)
    x = L.Add(name="add")([a, b])
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return Model(inp, L.Dense(1, name="head")(x), name="free")
