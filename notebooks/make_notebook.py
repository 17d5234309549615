"""Writes transfer_learning.ipynb (the lab as a notebook). Edit the cells here, then run
`python notebooks/make_notebook.py`; the .ipynb is committed without outputs."""
import json
from pathlib import Path

cells = []


def md(text):
    cells.append({"cell_type": "markdown", "metadata": {}, "source": text.strip("\n")})


def code(text):
    cells.append({"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
                  "source": text.strip("\n")})


md("""
# Transfer learning and fine-tuning with catdog

The TensorFlow tutorial's cats-vs-dogs lab — an ImageNet MobileNetV2 frozen as a feature
extractor, a small classifier trained on top, then fine-tuning from layer 100 — with `catdog`
written where the lab said `tf.keras`. Everything runs on catdog's C engine (oneDNN); no
TensorFlow is needed.
""")
md("""
**On Colab, the next cell installs catdog** (elsewhere it does nothing: install catdog with
`pip install .` or the README's `bash scripts/lab.sh` first). Upload the source archive
`catdog-0.1.0.tar.gz` or a wheel to `/content` (the Files pane) before running it, or set
`%env CATDOG_SOURCE=...` to what pip should install: a git URL (`git+https://…`), a path to an
archive or wheel, or a folder with the sources. The README's Colab section says how to make the
archive.
""")
code("""
import glob, os, sys
if "google.colab" in sys.modules:
    uploaded = sorted(glob.glob("/content/catdog-*.whl") + glob.glob("/content/catdog-*.tar.gz"))
    source = os.environ.get("CATDOG_SOURCE") or (uploaded[0] if uploaded else None)
    if source is None:
        raise FileNotFoundError("upload catdog-0.1.0.tar.gz (or a catdog wheel) to /content, "
                                "or set %env CATDOG_SOURCE=<git URL or path>, then rerun this cell")
    !pip -q install "{source}"
""")
code("""
import os
from pathlib import Path

import numpy as np
import catdog
from catdog import layers

# Small settings for quick runs (the notebook test uses them); the lab's are 10 + 10 epochs.
INITIAL_EPOCHS = int(os.environ.get("CATDOG_LAB_EPOCHS", 10))
FINE_TUNE_EPOCHS = int(os.environ.get("CATDOG_LAB_FINE_TUNE_EPOCHS", 10))
SUBSET = int(os.environ.get("CATDOG_LAB_SUBSET", 0))  # images per class, 0 = all
catdog.random.set_seed(1337)
print("catdog", catdog.__version__, "on oneDNN", catdog._engine.onednn_version(),
      "with", catdog.get_num_threads(), "threads")
""")
md("""
## Data

`catdog.datasets.cats_and_dogs()` downloads and caches the official zip (or uses `CATDOG_DATA`
/ a copy beside the project). `image_dataset_from_directory` decodes every image once in C.
""")
code("""
from catdog.lab import find_shared, subset_folder
import tempfile

shared = find_shared()
PATH = shared / "data" / "cats_and_dogs_filtered" if shared else catdog.datasets.cats_and_dogs()
train_dir, validation_dir = PATH / "train", PATH / "validation"
if SUBSET:
    tmp = Path(tempfile.mkdtemp(prefix="catdog-nb-"))
    train_dir = subset_folder(train_dir, SUBSET, tmp / "train")
    validation_dir = subset_folder(validation_dir, SUBSET, tmp / "validation")

BATCH_SIZE = 32
IMG_SIZE = (160, 160)
train_dataset = catdog.utils.image_dataset_from_directory(train_dir, shuffle=True,
                                                          batch_size=BATCH_SIZE, image_size=IMG_SIZE)
validation_dataset = catdog.utils.image_dataset_from_directory(validation_dir, shuffle=True,
                                                               batch_size=BATCH_SIZE, image_size=IMG_SIZE)
class_names = train_dataset.class_names
class_names
""")
code("""
catdog.plot.samples(train_dataset, class_names=class_names)
""")
md("""
The lab takes a test split from the validation set with `take`/`skip`. In TensorFlow those
splits mix from one epoch to the next, because the dataset reshuffles (tensorflow#59279);
catdog's `take`/`skip` select a fixed, disjoint set of images.
""")
code("""
val_batches = validation_dataset.cardinality()
test_dataset = validation_dataset.take(max(val_batches // 5, 1))
validation_dataset = validation_dataset.skip(max(val_batches // 5, 1))
print("Number of validation batches:", validation_dataset.cardinality())
print("Number of test batches:", test_dataset.cardinality())
""")
md("""
## Data augmentation

Inside the model the augmentation layers run in C on the loader's threads, only while
training. Called directly on an array they augment at once, a new draw each call (Keras 3's
default): here nine flips/rotations of one image.
""")
code("""
import matplotlib.pyplot as plt

data_augmentation = catdog.Sequential([
    layers.RandomFlip("horizontal"),
    layers.RandomRotation(0.2),
])
image, _ = next(iter(train_dataset))
first_image = image[0]
fig = plt.figure(figsize=(8, 8))
for i in range(9):
    ax = plt.subplot(3, 3, i + 1)
    augmented_image = data_augmentation(catdog.ops.expand_dims(first_image, 0))
    plt.imshow(augmented_image[0] / 255)
    plt.axis("off")
plt.close(fig)  # shown once, as the cell's result
fig
""")
md("## The base model: MobileNetV2 pre-trained on ImageNet, without its classifier")
code("""
preprocess_input = catdog.applications.mobilenet_v2.preprocess_input
IMG_SHAPE = IMG_SIZE + (3,)
weights = "imagenet"
if shared and (shared / "weights").is_dir():  # the 224 checkpoint serves 160x160 here
    weights = str(shared / "weights" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5")
base_model = catdog.applications.MobileNetV2(input_shape=IMG_SHAPE, include_top=False, weights=weights)
# called on an array, a model (or a layer) runs at once and returns an array, as in Keras 3
image_batch, label_batch = next(iter(train_dataset))
feature_batch = base_model(preprocess_input(image_batch))
print(feature_batch.shape)
""")
md("""
## Feature extraction: freeze the base, add a classification head

The head's layers are tried on the feature batch first; the same layer objects (and the
weights they made) then build the model.
""")
code("""
base_model.trainable = False
global_average_layer = layers.GlobalAveragePooling2D()
feature_batch_average = global_average_layer(feature_batch)
prediction_layer = layers.Dense(1)
prediction_batch = prediction_layer(feature_batch_average)
print(feature_batch_average.shape, prediction_batch.shape)

inputs = catdog.Input(shape=IMG_SHAPE)
x = data_augmentation(inputs)
x = preprocess_input(x)
x = base_model(x, training=False)
x = global_average_layer(x)
x = layers.Dropout(0.2)(x)
outputs = prediction_layer(x)
model = catdog.Model(inputs, outputs)

base_learning_rate = 0.0001
model.compile(optimizer=catdog.optimizers.Adam(learning_rate=base_learning_rate),
              loss=catdog.losses.BinaryCrossentropy(from_logits=True),
              metrics=[catdog.metrics.BinaryAccuracy(threshold=0, name="accuracy")])
model.summary()
print("trainable variables:", len(model.trainable_variables))  # the Dense kernel and bias
""")
code("""
loss0, accuracy0 = model.evaluate(validation_dataset)
print(f"initial loss: {loss0:.2f}, initial accuracy: {accuracy0:.2f}")
history = model.fit(train_dataset, epochs=INITIAL_EPOCHS, validation_data=validation_dataset)
""")
code("""
catdog.plot.learning_curves(history)
""")
md("## Fine-tuning: unfreeze the top of the base model (from layer 100)")
code("""
base_model.trainable = True
print("Number of layers in the base model:", len(base_model.layers))
fine_tune_at = 100
for layer in base_model.layers[:fine_tune_at]:
    layer.trainable = False
model.compile(loss=catdog.losses.BinaryCrossentropy(from_logits=True),
              optimizer=catdog.optimizers.RMSprop(learning_rate=base_learning_rate / 10),
              metrics=[catdog.metrics.BinaryAccuracy(threshold=0, name="accuracy")])
model.summary()
print("trainable variables:", len(model.trainable_variables))
""")
code("""
total_epochs = INITIAL_EPOCHS + FINE_TUNE_EPOCHS
history_fine = model.fit(train_dataset, epochs=total_epochs, initial_epoch=history.epoch[-1],
                         validation_data=validation_dataset)
catdog.plot.learning_curves(history, history_fine)
""")
md("## Evaluation and prediction on the test split")
code("""
loss, accuracy = model.evaluate(test_dataset)
print("Test accuracy:", accuracy)
image_batch, label_batch = test_dataset.as_numpy_iterator().next()
# catdog.ops: Keras 3's operations on arrays, where the TensorFlow tutorial writes tf.nn.sigmoid
# and tf.where; the model returns logits
probabilities = catdog.ops.sigmoid(model.predict_on_batch(image_batch).flatten())
predictions = catdog.ops.where(probabilities < 0.5, 0, 1)
print("Predictions:", predictions.numpy())
print("Labels:     ", label_batch)
catdog.plot.predictions(image_batch, label_batch.ravel().astype(int), predictions, class_names)
""")
md("## What the model gets wrong, and where it looks")
code("""
test_images = np.concatenate([x for x, _ in test_dataset])
test_labels = np.concatenate([y for _, y in test_dataset]).ravel().astype(int)
test_probs = catdog.plot.probabilities(model, test_images)  # P(dogs): sigmoid of the logit
catdog.plot.top_losses(test_images, test_labels, test_probs, class_names)
""")
code("""
catdog.plot.confusion_matrix(test_labels, (test_probs.ravel() > 0.5).astype(int), class_names)
""")
code("""
# Grad-CAM: the engine's backward from the class logit to the last convolution (out_relu)
catdog.plot.grad_cam_overlay(model, test_images[:6], class_names)
""")

md("""
## Another base: ResNet50, VGG16, MobileNetV3 or EfficientNetB0

`catdog.applications` builds Keras's other bases too, with their ImageNet weights (downloaded
once and checked against Keras's published hash). From a terminal, `catdog-lab --base resnet50`
(or `vgg16`, `mobilenetv3small`, `mobilenetv3large`, `efficientnetb0`) runs this whole lab with
that base, fine-tuning from the layer `docs/applications.md` gives for it. In a notebook, only
the base and its preprocessing change: EfficientNetB0 and MobileNetV3 hold theirs inside the
model; ResNet50's and VGG16's "caffe" `preprocess_input` goes where MobileNetV2's went. Without
a network the cell falls back to random weights.
""")
code("""
from catdog.lab import BASES  # catdog-lab's table: builder, preprocessing, fine-tuning layer

BASE = "efficientnetb0"  # resnet50, vgg16, mobilenetv3small, mobilenetv3large, mobilenetv2
builder_name, preprocessing, fine_tune_from, why = BASES[BASE]
build_base = getattr(catdog.applications, builder_name)
try:
    other_base = build_base(input_shape=IMG_SHAPE, include_top=False, weights="imagenet")
except OSError as err:  # no download here: the same network, random weights
    print(f"ImageNet weights unavailable ({type(err).__name__}): random weights instead")
    other_base = build_base(input_shape=IMG_SHAPE, include_top=False, weights=None)
other_base.trainable = False
print(f"{builder_name}: {len(other_base.layers)} layers; fine-tuning would start at "
      f"{fine_tune_from!r} ({why})")

inputs = catdog.Input(shape=IMG_SHAPE)
x = data_augmentation(inputs)
if BASE in ("resnet50", "vgg16"):  # "caffe": BGR, minus the ImageNet mean, in the model
    x = getattr(catdog.applications, BASE).preprocess_input(x)
elif BASE == "mobilenetv2":
    x = catdog.applications.mobilenet_v2.preprocess_input(x)
x = other_base(x, training=False)
x = layers.GlobalAveragePooling2D()(x)
x = layers.Dropout(0.2)(x)
other_model = catdog.Model(inputs, layers.Dense(1)(x))
other_model.compile(optimizer=catdog.optimizers.Adam(learning_rate=base_learning_rate),
                    loss=catdog.losses.BinaryCrossentropy(from_logits=True),
                    metrics=[catdog.metrics.BinaryAccuracy(threshold=0, name="accuracy")])
other_history = other_model.fit(train_dataset, epochs=INITIAL_EPOCHS,
                                validation_data=validation_dataset)
""")

nb = {"cells": cells, "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                                  "name": "python3"},
                                   "language_info": {"name": "python"}},
      "nbformat": 4, "nbformat_minor": 5}
for i, c in enumerate(nb["cells"]):
    c["id"] = f"cell-{i}"
    c["source"] = [line + "\n" for line in c["source"].split("\n")]
    c["source"][-1] = c["source"][-1].rstrip("\n")
Path(__file__).with_name("transfer_learning.ipynb").write_text(json.dumps(nb, indent=1) + "\n")
