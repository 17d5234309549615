"""The published TensorFlow tutorial runs with catdog written for tf.keras.

The code cells of tensorflow/docs `site/en/tutorials/images/transfer_learning.ipynb`
(Copyright 2019 The TensorFlow Authors, Apache License 2.0), transcribed in three of its
versions with only these replacements of the tutorial's text:

    import tensorflow as tf         ->  import catdog
    from tensorflow import keras    ->  import catdog as keras        (2019)
    tensorflow.keras / tf.keras     ->  catdog
    tf.data                         ->  catdog.data
    tf.<op>, tf.nn.<op>             ->  catdog.ops.<op>, catdog.ops.nn.<op>

`test_transcription_has_no_tensorflow_left` checks that no other `tf.` remains. The cells
run in order in one namespace, as a notebook would (a last expression is the cell's Out),
on a subset of ../shared's cats_and_dogs_filtered, with ../shared's 1.0_224 ImageNet weights
standing in for the 1.0_160 download (get_file finds the subset through CATDOG_DATA, as a
user's unzipped copy). To keep it short, RUN_SIZE lists the only edits made for the run: the
number of epochs. Everything else is the tutorial's text.

Versions (by their spellings):
- 2020-2021: `from tensorflow.keras.preprocessing import image_dataset_from_directory`,
  `tf.keras.layers.experimental.preprocessing.*`, `tf.data.experimental.cardinality`,
  `tf.data.AUTOTUNE` + `prefetch`, `images[i].numpy()`, eager `base_model(image_batch)` /
  `global_average_layer(...)` / `prediction_layer(...)` / `data_augmentation(...)`,
  `RMSprop(lr=...)`, `metrics=['accuracy']`, `as_numpy_iterator().next()`,
  `tf.nn.sigmoid`, `tf.where`, `.numpy()` on the result.
- 2022-2024: `tf.keras.utils.image_dataset_from_directory`, `tf.keras.layers.RandomFlip` /
  `RandomRotation` / `Rescaling`, `tf.keras.utils.plot_model`,
  `tf.keras.metrics.BinaryAccuracy(threshold=0, name='accuracy')`,
  `RMSprop(learning_rate=...)`, `initial_epoch=len(history.epoch)`.
- 2019: `tf.keras.Sequential([base_model, GlobalAveragePooling2D(), Dense(1,
  activation='sigmoid')])` with `loss='binary_crossentropy'`, `RMSprop(lr=...)`,
  `tf.keras.utils.get_file(...)` + `os.path.splitext`.

Spellings of the 2019 version that still need a change (listed in NOTES.md): its input
pipeline (`keras.preprocessing.image.ImageDataGenerator(rescale=1./255)` +
`flow_from_directory`, and `train_generator.n` for the step counts) is replaced here by the
tutorial's later `image_dataset_from_directory` cell; `model.fit_generator(...,
steps_per_epoch, workers, validation_steps)` by `model.fit(..., validation_data)`; and
`history.history['acc']` / `['val_acc']` by Keras 3's `'accuracy'` / `'val_accuracy'`.
"""
import ast
import re
import textwrap
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED_DATA, SHARED_WEIGHTS, needs_shared_data, needs_shared_weights

# -- the tutorial, 2020-2021 (experimental.preprocessing, lr=, eager calls) -------------------
CELLS_2021 = [
    """
import matplotlib.pyplot as plt
import numpy as np
import os
import catdog

from catdog.preprocessing import image_dataset_from_directory
""",
    """
_URL = 'https://storage.googleapis.com/mledu-datasets/cats_and_dogs_filtered.zip'
path_to_zip = catdog.utils.get_file('cats_and_dogs.zip', origin=_URL, extract=True)
PATH = os.path.join(os.path.dirname(path_to_zip), 'cats_and_dogs_filtered')

train_dir = os.path.join(PATH, 'train')
validation_dir = os.path.join(PATH, 'validation')

BATCH_SIZE = 32
IMG_SIZE = (160, 160)

train_dataset = image_dataset_from_directory(train_dir,
                                             shuffle=True,
                                             batch_size=BATCH_SIZE,
                                             image_size=IMG_SIZE)
""",
    """
validation_dataset = image_dataset_from_directory(validation_dir,
                                                  shuffle=True,
                                                  batch_size=BATCH_SIZE,
                                                  image_size=IMG_SIZE)
""",
    """
class_names = train_dataset.class_names

plt.figure(figsize=(10, 10))
for images, labels in train_dataset.take(1):
  for i in range(9):
    ax = plt.subplot(3, 3, i + 1)
    plt.imshow(images[i].numpy().astype("uint8"))
    plt.title(class_names[labels[i]])
    plt.axis("off")
""",
    """
val_batches = catdog.data.experimental.cardinality(validation_dataset)
test_dataset = validation_dataset.take(val_batches // 5)
validation_dataset = validation_dataset.skip(val_batches // 5)
""",
    """
print('Number of validation batches: %d' % catdog.data.experimental.cardinality(validation_dataset))
print('Number of test batches: %d' % catdog.data.experimental.cardinality(test_dataset))
""",
    """
AUTOTUNE = catdog.data.AUTOTUNE

train_dataset = train_dataset.prefetch(buffer_size=AUTOTUNE)
validation_dataset = validation_dataset.prefetch(buffer_size=AUTOTUNE)
test_dataset = test_dataset.prefetch(buffer_size=AUTOTUNE)
""",
    """
data_augmentation = catdog.Sequential([
  catdog.layers.experimental.preprocessing.RandomFlip('horizontal'),
  catdog.layers.experimental.preprocessing.RandomRotation(0.2),
])
""",
    """
for image, _ in train_dataset.take(1):
  plt.figure(figsize=(10, 10))
  first_image = image[0]
  for i in range(9):
    ax = plt.subplot(3, 3, i + 1)
    augmented_image = data_augmentation(catdog.ops.expand_dims(first_image, 0))
    plt.imshow(augmented_image[0] / 255)
    plt.axis('off')
""",
    """
preprocess_input = catdog.applications.mobilenet_v2.preprocess_input
""",
    """
rescale = catdog.layers.experimental.preprocessing.Rescaling(1./127.5, offset= -1)
""",
    """
# Create the base model from the pre-trained model MobileNet V2
IMG_SHAPE = IMG_SIZE + (3,)
base_model = catdog.applications.MobileNetV2(input_shape=IMG_SHAPE,
                                               include_top=False,
                                               weights='imagenet')
""",
    """
image_batch, label_batch = next(iter(train_dataset))
feature_batch = base_model(image_batch)
print(feature_batch.shape)
""",
    """
base_model.trainable = False
""",
    """
# Let's take a look at the base model architecture
base_model.summary()
""",
    """
global_average_layer = catdog.layers.GlobalAveragePooling2D()
feature_batch_average = global_average_layer(feature_batch)
print(feature_batch_average.shape)
""",
    """
prediction_layer = catdog.layers.Dense(1)
prediction_batch = prediction_layer(feature_batch_average)
print(prediction_batch.shape)
""",
    """
inputs = catdog.Input(shape=(160, 160, 3))
x = data_augmentation(inputs)
x = preprocess_input(x)
x = base_model(x, training=False)
x = global_average_layer(x)
x = catdog.layers.Dropout(0.2)(x)
outputs = prediction_layer(x)
model = catdog.Model(inputs, outputs)
""",
    """
base_learning_rate = 0.0001
model.compile(optimizer=catdog.optimizers.Adam(learning_rate=base_learning_rate),
              loss=catdog.losses.BinaryCrossentropy(from_logits=True),
              metrics=['accuracy'])
""",
    """
model.summary()
""",
    """
len(model.trainable_variables)
""",
    """

loss0, accuracy0 = model.evaluate(validation_dataset)
""",
    """
print("initial loss: {:.2f}".format(loss0))
print("initial accuracy: {:.2f}".format(accuracy0))
""",
    """
initial_epochs = 10

history = model.fit(train_dataset,
                    epochs=initial_epochs,
                    validation_data=validation_dataset)
""",
    """
acc = history.history['accuracy']
val_acc = history.history['val_accuracy']

loss = history.history['loss']
val_loss = history.history['val_loss']

plt.figure(figsize=(8, 8))
plt.subplot(2, 1, 1)
plt.plot(acc, label='Training Accuracy')
plt.plot(val_acc, label='Validation Accuracy')
plt.legend(loc='lower right')
plt.ylabel('Accuracy')
plt.ylim([min(plt.ylim()),1])
plt.title('Training and Validation Accuracy')

plt.subplot(2, 1, 2)
plt.plot(loss, label='Training Loss')
plt.plot(val_loss, label='Validation Loss')
plt.legend(loc='upper right')
plt.ylabel('Cross Entropy')
plt.ylim([0,1.0])
plt.title('Training and Validation Loss')
plt.xlabel('epoch')
plt.show()
""",
    """
base_model.trainable = True
""",
    """
# Let's take a look to see how many layers are in the base model
print("Number of layers in the base model: ", len(base_model.layers))

# Fine-tune from this layer onwards
fine_tune_at = 100

# Freeze all the layers before the `fine_tune_at` layer
for layer in base_model.layers[:fine_tune_at]:
  layer.trainable =  False
""",
    """
model.compile(loss=catdog.losses.BinaryCrossentropy(from_logits=True),
              optimizer = catdog.optimizers.RMSprop(lr=base_learning_rate/10),
              metrics=['accuracy'])
""",
    """
model.summary()
""",
    """
len(model.trainable_variables)
""",
    """
fine_tune_epochs = 10
total_epochs =  initial_epochs + fine_tune_epochs

history_fine = model.fit(train_dataset,
                         epochs=total_epochs,
                         initial_epoch=history.epoch[-1],
                         validation_data=validation_dataset)
""",
    """
acc += history_fine.history['accuracy']
val_acc += history_fine.history['val_accuracy']

loss += history_fine.history['loss']
val_loss += history_fine.history['val_loss']
""",
    """
plt.figure(figsize=(8, 8))
plt.subplot(2, 1, 1)
plt.plot(acc, label='Training Accuracy')
plt.plot(val_acc, label='Validation Accuracy')
plt.ylim([0.8, 1])
plt.plot([initial_epochs-1,initial_epochs-1],
          plt.ylim(), label='Start Fine Tuning')
plt.legend(loc='lower right')
plt.title('Training and Validation Accuracy')

plt.subplot(2, 1, 2)
plt.plot(loss, label='Training Loss')
plt.plot(val_loss, label='Validation Loss')
plt.ylim([0, 1.0])
plt.plot([initial_epochs-1,initial_epochs-1],
         plt.ylim(), label='Start Fine Tuning')
plt.legend(loc='upper right')
plt.title('Training and Validation Loss')
plt.xlabel('epoch')
plt.show()
""",
    """
loss, accuracy = model.evaluate(test_dataset)
print('Test accuracy :', accuracy)
""",
    """
#Retrieve a batch of images from the test set
image_batch, label_batch = test_dataset.as_numpy_iterator().next()
predictions = model.predict_on_batch(image_batch).flatten()

# Apply a sigmoid since our model returns logits
predictions = catdog.ops.nn.sigmoid(predictions)
predictions = catdog.ops.where(predictions < 0.5, 0, 1)

print('Predictions:\\n', predictions.numpy())
print('Labels:\\n', label_batch)

plt.figure(figsize=(10, 10))
for i in range(9):
  ax = plt.subplot(3, 3, i + 1)
  plt.imshow(image_batch[i].astype("uint8"))
  plt.title(class_names[predictions[i]])
  plt.axis("off")
""",
]

# -- 2022-2024: the cells whose spelling changed; the others are as in 2020-2021 --------------
_CHANGED_2024 = {
    0: """
import matplotlib.pyplot as plt
import numpy as np
import os
import catdog
""",
    1: """
_URL = 'https://storage.googleapis.com/mledu-datasets/cats_and_dogs_filtered.zip'
path_to_zip = catdog.utils.get_file('cats_and_dogs.zip', origin=_URL, extract=True)
PATH = os.path.join(os.path.dirname(path_to_zip), 'cats_and_dogs_filtered')

train_dir = os.path.join(PATH, 'train')
validation_dir = os.path.join(PATH, 'validation')

BATCH_SIZE = 32
IMG_SIZE = (160, 160)

train_dataset = catdog.utils.image_dataset_from_directory(train_dir,
                                                            shuffle=True,
                                                            batch_size=BATCH_SIZE,
                                                            image_size=IMG_SIZE)
""",
    2: """
validation_dataset = catdog.utils.image_dataset_from_directory(validation_dir,
                                                                 shuffle=True,
                                                                 batch_size=BATCH_SIZE,
                                                                 image_size=IMG_SIZE)
""",
    7: """
data_augmentation = catdog.Sequential([
  catdog.layers.RandomFlip('horizontal'),
  catdog.layers.RandomRotation(0.2),
])
""",
    10: """
rescale = catdog.layers.Rescaling(1./127.5, offset=-1)
""",
    18: """
base_learning_rate = 0.0001
model.compile(optimizer=catdog.optimizers.Adam(learning_rate=base_learning_rate),
              loss=catdog.losses.BinaryCrossentropy(from_logits=True),
              metrics=[catdog.metrics.BinaryAccuracy(threshold=0, name='accuracy')])
""",
    20: """
len(model.trainable_variables)
""",
    27: """
model.compile(loss=catdog.losses.BinaryCrossentropy(from_logits=True),
              optimizer = catdog.optimizers.RMSprop(learning_rate=base_learning_rate/10),
              metrics=[catdog.metrics.BinaryAccuracy(threshold=0, name='accuracy')])
""",
    30: """
fine_tune_epochs = 10
total_epochs =  initial_epochs + fine_tune_epochs

history_fine = model.fit(train_dataset,
                         epochs=total_epochs,
                         initial_epoch=len(history.epoch),
                         validation_data=validation_dataset)
""",
}
CELLS_2024 = [_CHANGED_2024.get(i, c) for i, c in enumerate(CELLS_2021)]
# 2022-2024 draw the model after counting its variables (and compile after that)
CELLS_2024.insert(21, """
catdog.utils.plot_model(model, show_shapes=True)
""")

# -- 2019: the Sequential form with a sigmoid head ---------------------------------------------
CELLS_2019 = [
    """
from __future__ import absolute_import, division, print_function

import os

import catdog
import catdog as keras
print("TensorFlow version is ", catdog.__version__)

import numpy as np

import matplotlib.pyplot as plt
import matplotlib.image as mpimg
""",
    """
zip_file = catdog.utils.get_file(origin="https://storage.googleapis.com/mledu-datasets/cats_and_dogs_filtered.zip",
                                   fname="cats_and_dogs_filtered.zip", extract=True)
base_dir, _ = os.path.splitext(zip_file)
""",
    """
train_dir = os.path.join(base_dir, 'train')
validation_dir = os.path.join(base_dir, 'validation')

# Directory with our training cat pictures
train_cats_dir = os.path.join(train_dir, 'cats')
print ('Total training cat images:', len(os.listdir(train_cats_dir)))

# Directory with our training dog pictures
train_dogs_dir = os.path.join(train_dir, 'dogs')
print ('Total training dog images:', len(os.listdir(train_dogs_dir)))

# Directory with our validation cat pictures
validation_cats_dir = os.path.join(validation_dir, 'cats')
print ('Total validation cat images:', len(os.listdir(validation_cats_dir)))

# Directory with our validation dog pictures
validation_dogs_dir = os.path.join(validation_dir, 'dogs')
print ('Total validation dog images:', len(os.listdir(validation_dogs_dir)))
""",
    # NOT the 2019 text (see the module doc): the ImageDataGenerator cell, as the later
    # tutorial loads the same folders
    """
image_size = 160 # All images will be resized to 160x160
batch_size = 32

train_generator = keras.utils.image_dataset_from_directory(
                train_dir, image_size=(image_size, image_size), batch_size=batch_size,
                label_mode='binary')
validation_generator = keras.utils.image_dataset_from_directory(
                validation_dir, image_size=(image_size, image_size), batch_size=batch_size,
                label_mode='binary')
""",
    """
IMG_SHAPE = (image_size, image_size, 3)

# Create the base model from the pre-trained model MobileNet V2
base_model = catdog.applications.MobileNetV2(input_shape=IMG_SHAPE,
                                               include_top=False, 
                                               weights='imagenet')
""",
    """
base_model.trainable = False
""",
    """
# Let's take a look at the base model architecture
base_model.summary()
""",
    """
model = catdog.Sequential([
  base_model,
  keras.layers.GlobalAveragePooling2D(),
  keras.layers.Dense(1, activation='sigmoid')
])
""",
    """
model.compile(optimizer=catdog.optimizers.RMSprop(lr=0.0001), 
              loss='binary_crossentropy', 
              metrics=['accuracy'])
""",
    """
model.summary()
""",
    """
len(model.trainable_variables)
""",
    # NOT the 2019 text: fit_generator(train_generator, steps_per_epoch, workers=4,
    # validation_data, validation_steps) -> fit
    """
epochs = 10

history = model.fit(train_generator,
                    epochs=epochs,
                    validation_data=validation_generator)
""",
    # 2019: history.history['acc'] / ['val_acc'] (Keras 3: 'accuracy')
    """
acc = history.history['accuracy']
val_acc = history.history['val_accuracy']

loss = history.history['loss']
val_loss = history.history['val_loss']

plt.figure(figsize=(8, 8))
plt.subplot(2, 1, 1)
plt.plot(acc, label='Training Accuracy')
plt.plot(val_acc, label='Validation Accuracy')
plt.legend(loc='lower right')
plt.ylabel('Accuracy')
plt.ylim([min(plt.ylim()),1])
plt.title('Training and Validation Accuracy')

plt.subplot(2, 1, 2)
plt.plot(loss, label='Training Loss')
plt.plot(val_loss, label='Validation Loss')
plt.legend(loc='upper right')
plt.ylabel('Cross Entropy')
plt.ylim([0,max(plt.ylim())])
plt.title('Training and Validation Loss')
plt.show()
""",
    """
base_model.trainable = True
""",
    """
# Let's take a look to see how many layers are in the base model
print("Number of layers in the base model: ", len(base_model.layers))

# Fine tune from this layer onwards
fine_tune_at = 100

# Freeze all the layers before the `fine_tune_at` layer
for layer in base_model.layers[:fine_tune_at]:
  layer.trainable =  False
""",
    """

model.compile(loss='binary_crossentropy',
              optimizer = catdog.optimizers.RMSprop(lr=2e-5),
              metrics=['accuracy'])
""",
    """
model.summary()
""",
    """
len(model.trainable_variables)
""",
    # NOT the 2019 text: fit_generator -> fit, as above
    """
history_fine = model.fit(train_generator,
                         epochs=epochs,
                         validation_data=validation_generator)
""",
    """
acc += history_fine.history['accuracy']
val_acc += history_fine.history['val_accuracy']

loss += history_fine.history['loss']
val_loss += history_fine.history['val_loss']
""",
    """
plt.figure(figsize=(8, 8))
plt.subplot(2, 1, 1)
plt.plot(acc, label='Training Accuracy')
plt.plot(val_acc, label='Validation Accuracy')
plt.ylim([0.9, 1])
plt.plot([epochs-1,epochs-1], plt.ylim(), label='Start Fine Tuning')
plt.legend(loc='lower right')
plt.title('Training and Validation Accuracy')

plt.subplot(2, 1, 2)
plt.plot(loss, label='Training Loss')
plt.plot(val_loss, label='Validation Loss')
plt.ylim([0, 0.2])
plt.plot([epochs-1,epochs-1], plt.ylim(), label='Start Fine Tuning')
plt.legend(loc='upper right')
plt.title('Training and Validation Loss')
plt.show()
""",
]

# The only edits for the run: fewer epochs (each must match exactly once).
RUN_SIZE = {
    # 2021 fine-tunes from initial_epoch=history.epoch[-1]: fine_tune_epochs + 1 epochs
    "2021": {"initial_epochs = 10": "initial_epochs = 2", "fine_tune_epochs = 10": "fine_tune_epochs = 0"},
    "2024": {"initial_epochs = 10": "initial_epochs = 2", "fine_tune_epochs = 10": "fine_tune_epochs = 1"},
    "2019": {"epochs = 10": "epochs = 2"},
}
VERSIONS = {"2021": CELLS_2021, "2024": CELLS_2024, "2019": CELLS_2019}
TRAIN_PER_CLASS, VALIDATION_PER_CLASS = 32, 80  # full batches of 32 only: 2 training; 5 validation, 1 of them test


def sized(version):
    cells = [textwrap.dedent(c).strip("\n") for c in VERSIONS[version]]
    for old, new in RUN_SIZE[version].items():
        hits = [i for i, c in enumerate(cells) if re.search(rf"^{re.escape(old)}$", c, re.M)]
        assert len(hits) == 1, f"{version}: {old!r} found in cells {hits}"
        cells[hits[0]] = re.sub(rf"^{re.escape(old)}$", new, cells[hits[0]], flags=re.M)
    return cells


def run_cells(cells, namespace):
    """Run cells like a notebook: statements, then the last expression as the cell's Out."""
    import matplotlib.pyplot as plt

    outs = []
    for i, src in enumerate(cells):
        tree = ast.parse(src)
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        try:
            exec(compile(tree, f"<cell {i}>", "exec"), namespace)
            outs.append(eval(compile(ast.Expression(last.value), f"<cell {i}>", "eval"), namespace)
                        if last is not None else None)
        except Exception as e:
            raise AssertionError(f"cell {i} failed ({type(e).__name__}: {e}):\n{src}") from e
        finally:
            plt.close("all")
    return outs


@pytest.fixture(scope="module")
def subset(tmp_path_factory):
    """A small cats_and_dogs_filtered (symlinks into ../shared), served to get_file through
    CATDOG_DATA as a user's unzipped copy would be."""
    from catdog.lab import subset_folder

    root = tmp_path_factory.mktemp("tutorial") / "cats_and_dogs_filtered"
    subset_folder(SHARED_DATA / "train", TRAIN_PER_CLASS, root / "train")
    subset_folder(SHARED_DATA / "validation", VALIDATION_PER_CLASS, root / "validation")
    return root


@pytest.fixture
def tutorial_env(subset, tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.setenv("CATDOG_DATA", str(subset))
    monkeypatch.setenv("CATDOG_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CATDOG_WEIGHTS_DIR", str(SHARED_WEIGHTS.parent))
    monkeypatch.setenv("CATDOG_WEIGHTS_ANY_SIZE", "1")  # the 224 file serves 160x160
    monkeypatch.chdir(tmp_path)  # plot_model writes model.png here
    import catdog

    # the tutorial passes no seed: the file order comes from NumPy's global RNG, as in Keras;
    # seeding it (and catdog's streams) makes the run repeatable
    catdog.random.set_seed(1337)
    np.random.seed(1337)
    return {"__name__": "__main__"}


def test_transcription_has_no_tensorflow_left():
    for version, cells in VERSIONS.items():
        for i, c in enumerate(cells):
            assert not re.search(r"\btf\.|tensorflow\.", c), f"{version} cell {i}: {c}"


@needs_shared_data
@needs_shared_weights
@pytest.mark.parametrize("version", ["2021", "2024"])
def test_tutorial_runs_and_learns(version, tutorial_env, capsys):
    ns = tutorial_env
    outs = run_cells(sized(version), ns)
    printed = capsys.readouterr().out
    assert "(32, 5, 5, 1280)" in printed and "(32, 1280)" in printed and "(32, 1)" in printed
    counts = [o for o in outs if isinstance(o, int)]
    assert counts == [2, 56], f"len(model.trainable_variables) gave {counts}"
    assert "Number of test batches: 1" in printed
    assert "Test accuracy :" in printed
    h, hf = ns["history"], ns["history_fine"]
    assert h.epoch == [0, 1]
    # learned: the validation loss falls from the untrained model's (loss0) after every epoch
    # of both stages and the accuracy rises well above it (with dropout and augmentation on
    # 2 training batches the training loss itself is too noisy to judge). history.history's
    # lists also hold the fine-tuning epoch: the tutorial's `loss += ...` extends them.
    val_losses = [ns["loss0"]] + h.history["val_loss"]
    assert h.history["val_loss"][-1] == hf.history["val_loss"][-1]
    assert all(b < a for a, b in zip(val_losses, val_losses[1:])), val_losses
    assert hf.history["val_accuracy"][-1] > ns["accuracy0"] + 0.1, (ns["accuracy0"], hf.history)
    assert hf.epoch == [1 if version == "2021" else 2]  # history.epoch[-1] vs len(...)
    preds = ns["predictions"]
    assert preds.dtype == np.int32 and set(preds.tolist()) <= {0, 1} and preds.shape == (32,)
    # the grid of nine augmented copies of one image: nine different images
    aug = ns["data_augmentation"]
    first = ns["first_image"]
    tiles = {aug(np.expand_dims(first, 0))[0].tobytes() for _ in range(9)}
    assert len(tiles) == 9
    if version == "2024":  # plot_model drew the chain into model.png
        assert outs[21] is not None and (Path.cwd() / "model.png").stat().st_size > 1000


@needs_shared_data
@needs_shared_weights
def test_tutorial_2019_sequential_sigmoid_runs_and_learns(tutorial_env, capsys):
    ns = tutorial_env
    outs = run_cells(sized("2019"), ns)
    counts = [o for o in outs if isinstance(o, int)]
    assert counts == [2, 56], f"len(model.trainable_variables) gave {counts}"
    model = ns["model"]
    assert model.input_shape == (160, 160, 3)
    h = ns["history"]
    # learned: the training loss falls every epoch, through both stages (history.history's
    # lists hold both: the tutorial's `loss += ...`). Validation is not judged: without the
    # 2019 ImageDataGenerator's rescale=1./255 the base sees pixels in [0, 255]
    losses = h.history["loss"]
    assert len(losses) == 4 and all(b < a for a, b in zip(losses, losses[1:])), losses
    p = model.predict(next(iter(ns["validation_generator"]))[0])
    assert p.shape == (32, 1) and np.all((p >= 0) & (p <= 1))
    # the weights it hands out are the ones it predicts with
    w = model.get_weights()
    import catdog

    fresh = catdog.Sequential([
        catdog.applications.MobileNetV2(input_shape=(160, 160, 3), include_top=False, weights=None),
        catdog.layers.GlobalAveragePooling2D(), catdog.layers.Dense(1, activation="sigmoid")])
    fresh.set_weights(w)
    x = next(iter(ns["validation_generator"]))[0]
    np.testing.assert_array_equal(fresh.predict(x), model.predict(x))
