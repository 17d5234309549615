"""One small functional model using every layer kind catdog runs, written once for Keras and
for catdog (tests/fixtures/make_every_layer_fixtures.py makes Keras's numbers with it;
tests/test_every_layer.py checks catdog's)."""

ACTIVATIONS = ["relu", "relu6", "sigmoid", "tanh", "softmax", "swish", "silu", "hard_sigmoid",
               "hard_swish", "hard_silu", "gelu", "elu", "selu", "softplus", "linear"]


def build(L, Input):
    """(inputs, outputs) with layers from L (keras.layers or catdog.layers) and Input."""
    inp = Input((12, 12, 3))
    x = L.RandomBrightness(0.0, value_range=(0, 255), name="brightness")(inp)
    x = L.RandomContrast(0.0, name="contrast")(x)
    x = L.Resizing(16, 16, name="resize")(x)
    x = L.Normalization(mean=[120.0, 110.0, 100.0], variance=[3000.0, 2500.0, 2000.0],
                        name="norm")(x)
    a = L.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="conv_s2")(x)
    c = L.Conv2D(8, 3, padding="same", groups=2, use_bias=False, name="conv_groups")(a)
    dl = L.Conv2D(8, 3, padding="same", dilation_rate=2, name="conv_dilated")(a)
    d = L.DepthwiseConv2D(5, padding="same", activation="swish", name="dw5")(a)
    e = L.SeparableConv2D(8, 3, padding="same", activation="gelu", name="sep")(a)
    f = L.BatchNormalization(center=False, name="bn_nocenter")(c)
    g = L.BatchNormalization(scale=False, name="bn_noscale")(d)
    h = L.BatchNormalization(center=False, scale=False, name="bn_plain")(e)
    k = L.BatchNormalization(name="bn")(dl)
    s = L.Add(name="add3")([f, g, h])
    t = L.Subtract(name="sub")([f, k])
    m = L.Maximum(name="max3")([f, g, h])
    av = L.Average(name="avg")([g, k])
    cat = L.Concatenate(name="cat")([s, t, m, av])
    gate = L.GlobalAveragePooling2D(keepdims=True, name="squeeze")(cat)
    gate = L.Conv2D(32, 1, activation="hard_sigmoid", name="gate")(gate)
    y = L.Multiply(name="excite")([cat, gate])
    branches = []
    for fn in ACTIVATIONS:
        z = L.Conv2D(2, 1, name=f"pre_{fn}")(y)
        branches.append(L.Activation(fn, name=f"act_{fn}")(z))
    z = L.concatenate(branches, axis=-1, name="acts")
    z = L.MaxPooling2D(2, name="pool")(z)
    v = L.Flatten(name="flat")(z)
    v = L.Dense(16, activation="tanh", name="fc")(v)
    w = L.Reshape((4, 4, 1), name="grid")(v)
    w = L.GlobalMaxPooling2D(name="gmp")(w)
    pooled = L.GlobalAveragePooling2D(name="gap")(y)
    u = L.concatenate([v, w, pooled], name="features")
    u = L.Dense(4, activation="softmax", name="probs")(u)
    out = L.Dense(1, name="head")(u)
    return inp, out
