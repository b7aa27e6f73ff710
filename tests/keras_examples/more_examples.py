"""The examples beyond issue #31's five patterns (registered with make_notebooks.example)."""
from make_notebooks import example

example("vae", "Variational autoencoder with a custom `train_step`", ["examples/generative/vae.py"],
        ["VAE: custom train_step, SeedGenerator sampling layer", "batch size in the parameters cell"],
        "batch_size = 64", model="vae", cells='''
# %%
import numpy as np
import tensorflow as tf
import keras
from keras import ops, layers
# %% parameters
batch_size = 32
# %%
class Sampling(layers.Layer):
    """Uses (z_mean, z_log_var) to sample z, the vector encoding a digit."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator(1337)

    def call(self, inputs):
        z_mean, z_log_var = inputs
        batch = ops.shape(z_mean)[0]
        dim = ops.shape(z_mean)[1]
        epsilon = keras.random.normal(shape=(batch, dim), seed=self.seed_generator)
        return z_mean + ops.exp(0.5 * z_log_var) * epsilon
# %%
latent_dim = 2

encoder_inputs = keras.Input(shape=(16, 16, 1))
x = layers.Conv2D(8, 3, activation="relu", strides=2, padding="same")(encoder_inputs)
x = layers.Conv2D(16, 3, activation="relu", strides=2, padding="same")(x)
x = layers.Flatten()(x)
x = layers.Dense(16, activation="relu")(x)
z_mean = layers.Dense(latent_dim, name="z_mean")(x)
z_log_var = layers.Dense(latent_dim, name="z_log_var")(x)
z = Sampling()([z_mean, z_log_var])
encoder = keras.Model(encoder_inputs, [z_mean, z_log_var, z], name="encoder")

latent_inputs = keras.Input(shape=(latent_dim,))
x = layers.Dense(4 * 4 * 16, activation="relu")(latent_inputs)
x = layers.Reshape((4, 4, 16))(x)
x = layers.Conv2DTranspose(16, 3, activation="relu", strides=2, padding="same")(x)
x = layers.Conv2DTranspose(8, 3, activation="relu", strides=2, padding="same")(x)
decoder_outputs = layers.Conv2DTranspose(1, 3, activation="sigmoid", padding="same")(x)
decoder = keras.Model(latent_inputs, decoder_outputs, name="decoder")
# %%
class VAE(keras.Model):
    def __init__(self, encoder, decoder, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.total_loss_tracker = keras.metrics.Mean(name="total_loss")
        self.reconstruction_loss_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_loss_tracker = keras.metrics.Mean(name="kl_loss")

    @property
    def metrics(self):
        return [self.total_loss_tracker, self.reconstruction_loss_tracker, self.kl_loss_tracker]

    def train_step(self, data):
        with tf.GradientTape() as tape:
            z_mean, z_log_var, z = self.encoder(data)
            reconstruction = self.decoder(z)
            reconstruction_loss = ops.mean(
                ops.sum(keras.losses.binary_crossentropy(data, reconstruction), axis=(1, 2))
            )
            kl_loss = -0.5 * (1 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var))
            kl_loss = ops.mean(ops.sum(kl_loss, axis=1))
            total_loss = reconstruction_loss + kl_loss
        grads = tape.gradient(total_loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
        self.total_loss_tracker.update_state(total_loss)
        self.reconstruction_loss_tracker.update_state(reconstruction_loss)
        self.kl_loss_tracker.update_state(kl_loss)
        return {
            "loss": self.total_loss_tracker.result(),
            "reconstruction_loss": self.reconstruction_loss_tracker.result(),
            "kl_loss": self.kl_loss_tracker.result(),
        }
# %% md
Stand-in for MNIST: 192 grey 16x16 images in [0, 1].
# %%
mnist_digits = np.random.default_rng(0).random((192, 16, 16, 1)).astype("float32")
# %%
vae = VAE(encoder, decoder)
vae.compile(optimizer=keras.optimizers.Adam())
%repro_snapshot vae
# %% fit
%%repro_fit vae
history = vae.fit(mnist_digits, epochs=1, batch_size=batch_size, verbose=0)
''')

example("custom_training_loop", "A training loop from scratch (GradientTape, no `model.fit`)",
        ["guides/writing_a_custom_training_loop_in_tensorflow.py"],
        ["custom training loop: tf.GradientTape in the fit cell", "optimizer outside the model",
         "tf.data shuffle"],
        "learning_rate = 5e-3", result="None", extra=["optimizer"], cells='''
# %%
import numpy as np
import tensorflow as tf
import keras
# %% parameters
learning_rate = 1e-3
# %%
def get_model():
    inputs = keras.Input(shape=(64,), name="digits")
    x1 = keras.layers.Dense(32, activation="relu")(inputs)
    x2 = keras.layers.Dense(32, activation="relu")(x1)
    outputs = keras.layers.Dense(10, name="predictions")(x2)
    model = keras.Model(inputs=inputs, outputs=outputs)
    return model


model = get_model()
%repro_snapshot model
# %% rerun
optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
# %% md
Stand-in for MNIST: 320 flattened 8x8 images, 10 classes.
# %% rerun
batch_size = 32
rng = np.random.default_rng(0)
x_train = rng.random((320, 64)).astype("float32")
y_train = rng.integers(0, 10, 320)
train_dataset = tf.data.Dataset.from_tensor_slices((x_train, y_train))
train_dataset = train_dataset.shuffle(buffer_size=1024).batch(batch_size)
# %% fit
%%repro_fit model
epochs = 2
for epoch in range(epochs):
    for step, (x_batch_train, y_batch_train) in enumerate(train_dataset):
        with tf.GradientTape() as tape:
            logits = model(x_batch_train, training=True)
            loss_value = loss_fn(y_batch_train, logits)
        grads = tape.gradient(loss_value, model.trainable_weights)
        optimizer.apply(grads, model.trainable_weights)
''')

example("custom_training_loop_compiled", "A training loop from scratch, the model compiled as the refusal asks",
        ["guides/writing_a_custom_training_loop_in_tensorflow.py"],
        ["custom training loop: tf.GradientTape in the fit cell", "optimizer outside the model",
         "model.compile(optimizer, loss) added before the snapshot (what custom_training_loop's refusal says)"],
        "learning_rate = 5e-3", result="None", extra=["optimizer"], cells='''
# %%
import numpy as np
import tensorflow as tf
import keras
# %% parameters
learning_rate = 1e-3
# %%
def get_model():
    inputs = keras.Input(shape=(64,), name="digits")
    x1 = keras.layers.Dense(32, activation="relu")(inputs)
    x2 = keras.layers.Dense(32, activation="relu")(x1)
    outputs = keras.layers.Dense(10, name="predictions")(x2)
    model = keras.Model(inputs=inputs, outputs=outputs)
    return model


model = get_model()
# %% rerun
optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
# %%
model.compile(optimizer=optimizer, loss=loss_fn)
%repro_snapshot model
# %% md
Stand-in for MNIST: 320 flattened 8x8 images, 10 classes.
# %% rerun
batch_size = 32
rng = np.random.default_rng(0)
x_train = rng.random((320, 64)).astype("float32")
y_train = rng.integers(0, 10, 320)
train_dataset = tf.data.Dataset.from_tensor_slices((x_train, y_train))
train_dataset = train_dataset.shuffle(buffer_size=1024).batch(batch_size)
# %% fit
%%repro_fit model
epochs = 2
for epoch in range(epochs):
    for step, (x_batch_train, y_batch_train) in enumerate(train_dataset):
        with tf.GradientTape() as tape:
            logits = model(x_batch_train, training=True)
            loss_value = loss_fn(y_batch_train, logits)
        grads = tape.gradient(loss_value, model.trainable_weights)
        optimizer.apply(grads, model.trainable_weights)
''')

example("functional_api_multi_input_multi_output", "Multi-input, multi-output functional model",
        ["guides/functional_api.py"],
        ["three inputs, two named outputs", "loss dict and loss_weights", "LSTM"],
        "department_weight = 1.0", cells='''
# %%
import numpy as np
import keras
from keras import layers
# %% parameters
department_weight = 0.2
# %%
num_tags = 12
num_words = 100
num_departments = 4

title_input = keras.Input(shape=(None,), name="title")
body_input = keras.Input(shape=(None,), name="body")
tags_input = keras.Input(shape=(num_tags,), name="tags")

title_features = layers.Embedding(num_words, 8)(title_input)
body_features = layers.Embedding(num_words, 8)(body_input)
title_features = layers.LSTM(8)(title_features)
body_features = layers.LSTM(4)(body_features)
x = layers.concatenate([title_features, body_features, tags_input])
priority_pred = layers.Dense(1, name="priority")(x)
department_pred = layers.Dense(num_departments, name="department")(x)

model = keras.Model(
    inputs=[title_input, body_input, tags_input],
    outputs={"priority": priority_pred, "department": department_pred},
)
# %% rerun
model.compile(
    optimizer=keras.optimizers.RMSprop(1e-3),
    loss={
        "priority": keras.losses.BinaryCrossentropy(from_logits=True),
        "department": keras.losses.CategoricalCrossentropy(from_logits=True),
    },
    loss_weights={"priority": 1.0, "department": department_weight},
)
# %%
%repro_snapshot model
# %%
title_data = np.random.randint(num_words, size=(256, 10))
body_data = np.random.randint(num_words, size=(256, 20))
tags_data = np.random.randint(2, size=(256, num_tags)).astype("float32")
priority_targets = np.random.random(size=(256, 1))
dept_targets = np.random.randint(2, size=(256, num_departments))
# %% fit
%%repro_fit model
history = model.fit(
    {"title": title_data, "body": body_data, "tags": tags_data},
    {"priority": priority_targets, "department": dept_targets},
    epochs=1,
    batch_size=32,
    verbose=0,
)
''')

GET_COMPILED_MODEL = '''
# %%
def get_uncompiled_model():
    inputs = keras.Input(shape=(64,), name="digits")
    x = layers.Dense(32, activation="relu", name="dense_1")(inputs)
    x = layers.Dense(32, activation="relu", name="dense_2")(x)
    outputs = layers.Dense(10, activation="softmax", name="predictions")(x)
    model = keras.Model(inputs=inputs, outputs=outputs)
    return model


def get_compiled_model():
    model = get_uncompiled_model()
    model.compile(
        optimizer="rmsprop",
        loss="sparse_categorical_crossentropy",
        metrics=["sparse_categorical_accuracy"],
    )
    return model
# %% md
Stand-in for MNIST: 320 flattened 8x8 images, 10 classes.
# %%
rng = np.random.default_rng(0)
x_all = rng.random((320, 64)).astype("float32")
y_all = rng.integers(0, 10, 320)
x_train, y_train = x_all[:256], y_all[:256]
x_val, y_val = x_all[256:], y_all[256:]
'''

example("pydataset", "Training on a `keras.utils.PyDataset`", ["guides/training_with_built_in_methods.py"],
        ["keras.utils.PyDataset for training and validation"],
        "batch_size = 16", cells='''
# %%
import numpy as np
import keras
from keras import layers
# %% parameters
batch_size = 32
''' + GET_COMPILED_MODEL + '''
# %%
class ExamplePyDataset(keras.utils.PyDataset):
    def __init__(self, x, y, batch_size, **kwargs):
        super().__init__(**kwargs)
        self.x = x
        self.y = y
        self.batch_size = batch_size

    def __len__(self):
        return int(np.ceil(len(self.x) / float(self.batch_size)))

    def __getitem__(self, idx):
        batch_x = self.x[idx * self.batch_size : (idx + 1) * self.batch_size]
        batch_y = self.y[idx * self.batch_size : (idx + 1) * self.batch_size]
        return batch_x, batch_y
# %% rerun
train_py_dataset = ExamplePyDataset(x_train, y_train, batch_size=batch_size)
val_py_dataset = ExamplePyDataset(x_val, y_val, batch_size=batch_size)
# %%
model = get_compiled_model()
%repro_snapshot model
# %% fit
%%repro_fit model
history = model.fit(train_py_dataset, validation_data=val_py_dataset, epochs=1, verbose=0)
''')

example("steps_per_epoch_repeated_dataset", "`steps_per_epoch` on a repeated `tf.data` dataset",
        ["guides/training_with_built_in_methods.py"],
        ["tf.data .shuffle().batch().repeat()", "steps_per_epoch"],
        "steps_per_epoch = 8", cells='''
# %%
import numpy as np
import tensorflow as tf
import keras
from keras import layers
# %% parameters
steps_per_epoch = 5
''' + GET_COMPILED_MODEL + '''
# %%
model = get_compiled_model()
%repro_snapshot model
# %% rerun
train_dataset = tf.data.Dataset.from_tensor_slices((x_train, y_train))
train_dataset = train_dataset.shuffle(buffer_size=1024).batch(64).repeat()
# %% fit
%%repro_fit model
history = model.fit(train_dataset, epochs=2, steps_per_epoch=steps_per_epoch, verbose=0)
''')

example("mixed_precision_convnet", "Convnet under `mixed_bfloat16`, dropout rebuilt",
        ["examples/vision/mnist_convnet.py", "keras.io/api/mixed_precision/policy"],
        ["mixed precision (mixed_bfloat16, CPU)", "model rebuilt and re-snapshotted on a setting change"],
        "dropout = 0.2", cells='''
# %%
import numpy as np
import keras
from keras import layers

keras.mixed_precision.set_global_policy("mixed_bfloat16")
# %% parameters
dropout = 0.5
# %% md
Stand-in for MNIST: 3 digit templates on 16x16, with noise.
# %%
num_classes = 3
input_shape = (16, 16, 1)
rng = np.random.default_rng(0)
templates = rng.random((num_classes, 16, 16, 1))
y_train = rng.integers(0, num_classes, 240)
x_train = np.clip(templates[y_train] + 0.3 * rng.normal(size=(240, 16, 16, 1)), 0, 1).astype("float32")
y_train = keras.utils.to_categorical(y_train, num_classes)
# %% rerun
model = keras.Sequential(
    [
        keras.Input(shape=input_shape),
        layers.Conv2D(8, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(16, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(),
        layers.Dropout(dropout),
        layers.Dense(num_classes, activation="softmax"),
    ]
)
# %% rerun
batch_size = 32
epochs = 1
model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
%repro_snapshot model
# %% fit
%%repro_fit model
history = model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, validation_split=0.1, verbose=0)
''')

example("transfer_learning_fine_tuning", "Transfer learning: frozen base, then fine-tuning",
        ["guides/transfer_learning.py"],
        ["a small conv base (the guide's Xception, untrained and shrunk) frozen, fit, unfrozen, "
         "recompiled with a low LR, fit, in one fit cell", "BatchNormalization kept in inference mode"],
        "fine_tune_lr = 1e-4", cells='''
# %%
import numpy as np
import tensorflow as tf
import keras
# %% parameters
fine_tune_lr = 1e-5
# %% md
Stand-in for cats vs dogs: 96 + 32 RGB images of 32x32. No pretrained weights (nothing is downloaded): the
guide's Xception base is a small untrained conv base with BatchNormalization (MobileNetV2(weights=None,
alpha=0.35) took minutes per visit on 2 shared cores).
# %%
rng = np.random.default_rng(0)
images = rng.integers(0, 256, size=(128, 32, 32, 3)).astype("float32")
labels = (images[:, :16].mean(axis=(1, 2, 3)) > images[:, 16:].mean(axis=(1, 2, 3))).astype("float32")
train_ds = tf.data.Dataset.from_tensor_slices((images[:96], labels[:96])).batch(32)
validation_ds = tf.data.Dataset.from_tensor_slices((images[96:], labels[96:])).batch(32)
# %%
base_model = keras.Sequential(
    [
        keras.Input(shape=(32, 32, 3)),
        keras.layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False),
        keras.layers.BatchNormalization(),
        keras.layers.ReLU(),
        keras.layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False),
        keras.layers.BatchNormalization(),
        keras.layers.ReLU(),
    ],
    name="small_base",
)
base_model.trainable = False

inputs = keras.Input(shape=(32, 32, 3))
scale_layer = keras.layers.Rescaling(scale=1 / 127.5, offset=-1)
x = scale_layer(inputs)
x = base_model(x, training=False)
x = keras.layers.GlobalAveragePooling2D()(x)
x = keras.layers.Dropout(0.2)(x)
outputs = keras.layers.Dense(1)(x)
model = keras.Model(inputs, outputs)
# %%
model.compile(
    optimizer=keras.optimizers.Adam(),
    loss=keras.losses.BinaryCrossentropy(from_logits=True),
    metrics=[keras.metrics.BinaryAccuracy()],
)
%repro_snapshot model
# %% fit
%%repro_fit model
model.fit(train_ds, epochs=1, validation_data=validation_ds, verbose=0)

base_model.trainable = True
model.compile(
    optimizer=keras.optimizers.Adam(fine_tune_lr),
    loss=keras.losses.BinaryCrossentropy(from_logits=True),
    metrics=[keras.metrics.BinaryAccuracy()],
)
history = model.fit(train_ds, epochs=1, validation_data=validation_ds, verbose=0)
''')

example("knowledge_distillation", "Knowledge distillation (a `Distiller` with its own `compile`)",
        ["examples/vision/knowledge_distillation.py"],
        ["custom compile(optimizer, metrics, student_loss_fn, distillation_loss_fn, alpha, temperature)",
         "custom compute_loss", "a teacher trained in its own %%repro_fit cell"],
        "temperature = 3", model="distiller", cells='''
# %%
import numpy as np
import keras
from keras import layers, ops
# %% parameters
temperature = 10
# %%
class Distiller(keras.Model):
    def __init__(self, student, teacher):
        super().__init__()
        self.teacher = teacher
        self.student = student

    def compile(self, optimizer, metrics, student_loss_fn, distillation_loss_fn, alpha=0.1, temperature=3):
        super().compile(optimizer=optimizer, metrics=metrics)
        self.student_loss_fn = student_loss_fn
        self.distillation_loss_fn = distillation_loss_fn
        self.alpha = alpha
        self.temperature = temperature

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, allow_empty=False):
        teacher_pred = self.teacher(x, training=False)
        student_loss = self.student_loss_fn(y, y_pred)
        distillation_loss = self.distillation_loss_fn(
            ops.softmax(teacher_pred / self.temperature, axis=1),
            ops.softmax(y_pred / self.temperature, axis=1),
        ) * (self.temperature**2)
        loss = self.alpha * student_loss + (1 - self.alpha) * distillation_loss
        return loss

    def call(self, x):
        return self.student(x)
# %%
teacher = keras.Sequential(
    [
        keras.Input(shape=(16, 16, 1)),
        layers.Conv2D(16, (3, 3), strides=(2, 2), padding="same"),
        layers.LeakyReLU(negative_slope=0.2),
        layers.MaxPooling2D(pool_size=(2, 2), strides=(1, 1), padding="same"),
        layers.Conv2D(32, (3, 3), strides=(2, 2), padding="same"),
        layers.Flatten(),
        layers.Dense(10),
    ],
    name="teacher",
)
student = keras.Sequential(
    [
        keras.Input(shape=(16, 16, 1)),
        layers.Conv2D(4, (3, 3), strides=(2, 2), padding="same"),
        layers.LeakyReLU(negative_slope=0.2),
        layers.MaxPooling2D(pool_size=(2, 2), strides=(1, 1), padding="same"),
        layers.Conv2D(8, (3, 3), strides=(2, 2), padding="same"),
        layers.Flatten(),
        layers.Dense(10),
    ],
    name="student",
)
student_scratch = keras.models.clone_model(student)
# %% md
Stand-in for MNIST: 256 grey 16x16 images in [0, 1], 10 classes.
# %%
batch_size = 64
rng = np.random.default_rng(0)
x_train = rng.random((256, 16, 16, 1)).astype("float32")
y_train = rng.integers(0, 10, 256)
# %%
teacher.compile(
    optimizer=keras.optimizers.Adam(),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=[keras.metrics.SparseCategoricalAccuracy()],
)
%repro_snapshot teacher
# %%
%%repro_fit teacher
teacher.fit(x_train, y_train, epochs=1, verbose=0)
# %%
distiller = Distiller(student=student, teacher=teacher)
# %% rerun
distiller.compile(
    optimizer=keras.optimizers.Adam(),
    metrics=[keras.metrics.SparseCategoricalAccuracy()],
    student_loss_fn=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    distillation_loss_fn=keras.losses.KLDivergence(),
    alpha=0.1,
    temperature=temperature,
)
# %%
%repro_snapshot distiller
# %% fit
%%repro_fit distiller
history = distiller.fit(x_train, y_train, epochs=1, verbose=0)
''')

example("text_classification_from_scratch", "Text classification with `TextVectorization` in a `tf.data` map",
        ["examples/nlp/text_classification_from_scratch.py"],
        ["TextVectorization adapted, applied in a tf.data map", "custom standardization",
         "model rebuilt and re-snapshotted on a setting change"],
        "dropout = 0.2", cells='''
# %%
import re
import string

import numpy as np
import tensorflow as tf
import keras
from keras import layers
# %% parameters
dropout = 0.5
# %% md
Stand-in for IMDB: 256 short reviews drawn from a small vocabulary, HTML breaks included.
# %%
rng = np.random.default_rng(0)
good, bad, neutral = ["great", "superb", "loved", "fun"], ["awful", "boring", "hated", "dull"], \\
    ["the", "movie", "a", "plot", "actor", "was", "and", "film", "scene", "story"]


def review(label):
    words = rng.choice(neutral, 30).tolist() + rng.choice(good if label else bad, 5).tolist()
    rng.shuffle(words)
    return " ".join(words[:15]) + " <br /> " + " ".join(words[15:])


labels = rng.integers(0, 2, 256)
texts = np.array([review(label) for label in labels])
raw_train_ds = tf.data.Dataset.from_tensor_slices((texts[:192], labels[:192])).batch(32)
raw_val_ds = tf.data.Dataset.from_tensor_slices((texts[192:], labels[192:])).batch(32)
# %%
def custom_standardization(input_data):
    lowercase = tf.strings.lower(input_data)
    stripped_html = tf.strings.regex_replace(lowercase, "<br />", " ")
    return tf.strings.regex_replace(stripped_html, f"[{re.escape(string.punctuation)}]", "")


max_features = 200
embedding_dim = 16
sequence_length = 40

vectorize_layer = keras.layers.TextVectorization(
    standardize=custom_standardization,
    max_tokens=max_features,
    output_mode="int",
    output_sequence_length=sequence_length,
)
text_ds = raw_train_ds.map(lambda x, y: x)
vectorize_layer.adapt(text_ds)
# %%
def vectorize_text(text, label):
    text = tf.expand_dims(text, -1)
    return vectorize_layer(text), label


train_ds = raw_train_ds.map(vectorize_text)
val_ds = raw_val_ds.map(vectorize_text)
train_ds = train_ds.cache().prefetch(buffer_size=10)
val_ds = val_ds.cache().prefetch(buffer_size=10)
# %% rerun
inputs = keras.Input(shape=(None,), dtype="int64")
x = layers.Embedding(max_features, embedding_dim)(inputs)
x = layers.Dropout(dropout)(x)
x = layers.Conv1D(16, 7, padding="valid", activation="relu", strides=3)(x)
x = layers.Conv1D(16, 7, padding="valid", activation="relu", strides=3)(x)
x = layers.GlobalMaxPooling1D()(x)
x = layers.Dense(16, activation="relu")(x)
x = layers.Dropout(dropout)(x)
predictions = layers.Dense(1, activation="sigmoid", name="predictions")(x)
model = keras.Model(inputs, predictions)
# %% rerun
model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
%repro_snapshot model
# %% fit
%%repro_fit model
epochs = 2
history = model.fit(train_ds, validation_data=val_ds, epochs=epochs, verbose=0)
''')

example("image_classification_from_scratch", "Image classification with augmentation layers in a `tf.data` map",
        ["examples/vision/image_classification_from_scratch.py"],
        ["RandomFlip, RandomRotation in a tf.data map", "residual SeparableConv2D blocks, BatchNormalization",
         "ModelCheckpoint every epoch"],
        "rotation = 0.3", cells='''
# %%
import numpy as np
import keras
from keras import layers
from tensorflow import data as tf_data
# %% parameters
rotation = 0.1
# %% md
Stand-in for cats vs dogs: 96 + 32 RGB images of 32x32, as `image_dataset_from_directory` gives them.
# %%
image_size = (32, 32)
rng = np.random.default_rng(0)
images = rng.integers(0, 256, size=(128, 32, 32, 3)).astype("float32")
labels = (images[..., 0].mean(axis=(1, 2)) > images[..., 2].mean(axis=(1, 2))).astype("int32")
train_ds = tf_data.Dataset.from_tensor_slices((images[:96], labels[:96])).batch(32)
val_ds = tf_data.Dataset.from_tensor_slices((images[96:], labels[96:])).batch(32)
# %% rerun
data_augmentation_layers = [
    layers.RandomFlip("horizontal"),
    layers.RandomRotation(rotation),
]


def data_augmentation(images):
    for layer in data_augmentation_layers:
        images = layer(images)
    return images
# %% rerun
train_ds = tf_data.Dataset.from_tensor_slices((images[:96], labels[:96])).batch(32)
train_ds = train_ds.map(
    lambda img, label: (data_augmentation(img), label),
    num_parallel_calls=tf_data.AUTOTUNE,
)
train_ds = train_ds.prefetch(tf_data.AUTOTUNE)
val_ds = tf_data.Dataset.from_tensor_slices((images[96:], labels[96:])).batch(32)
val_ds = val_ds.prefetch(tf_data.AUTOTUNE)
# %%
def make_model(input_shape, num_classes):
    inputs = keras.Input(shape=input_shape)

    x = layers.Rescaling(1.0 / 255)(inputs)
    x = layers.Conv2D(16, 3, strides=2, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)

    previous_block_activation = x

    for size in [16, 32]:
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(size, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)

        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(size, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)

        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)

        residual = layers.Conv2D(size, 1, strides=2, padding="same")(previous_block_activation)
        x = layers.add([x, residual])
        previous_block_activation = x

    x = layers.SeparableConv2D(32, 3, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)

    x = layers.GlobalAveragePooling2D()(x)
    if num_classes == 2:
        units = 1
    else:
        units = num_classes

    x = layers.Dropout(0.25)(x)
    outputs = layers.Dense(units, activation=None)(x)
    return keras.Model(inputs, outputs)


model = make_model(input_shape=image_size + (3,), num_classes=2)
# %%
epochs = 2

callbacks = [
    keras.callbacks.ModelCheckpoint("save_at_{epoch}.keras"),
]
model.compile(
    optimizer=keras.optimizers.Adam(3e-4),
    loss=keras.losses.BinaryCrossentropy(from_logits=True),
    metrics=[keras.metrics.BinaryAccuracy(name="acc")],
)
%repro_snapshot model
# %% fit
%%repro_fit model
history = model.fit(train_ds, epochs=epochs, callbacks=callbacks, validation_data=val_ds, verbose=0)
''')

example("timeseries_weather_forecasting", "Weather forecasting with an LSTM",
        ["examples/timeseries/timeseries_weather_forecasting.py"],
        ["timeseries_dataset_from_array", "LSTM", "EarlyStopping and ModelCheckpoint(save_weights_only)"],
        "split_fraction = 0.6", cells='''
# %%
import numpy as np
import pandas as pd
import keras
# %% parameters
split_fraction = 0.715
# %% md
Stand-in for the Jena climate CSV: 600 hourly rows of three features.
# %%
rng = np.random.default_rng(0)
t = np.arange(600)
df = pd.DataFrame({
    "p (mbar)": 990 + 5 * np.sin(t / 50) + rng.normal(size=600),
    "T (degC)": 10 + 8 * np.sin(t / 24) + rng.normal(size=600),
    "rho (g/m**3)": 1200 + 20 * np.cos(t / 24) + rng.normal(size=600),
})
step = 2
past = 24
future = 6
learning_rate = 0.001
batch_size = 32
epochs = 2
# %% rerun
train_split = int(split_fraction * int(df.shape[0]))


def normalize(data, train_split):
    data_mean = data[:train_split].mean(axis=0)
    data_std = data[:train_split].std(axis=0)
    return (data - data_mean) / data_std


features = normalize(df.values, train_split)
features = pd.DataFrame(features)
train_data = features.loc[0 : train_split - 1]
val_data = features.loc[train_split:]

start = past + future
end = start + train_split
x_train = train_data[[i for i in range(3)]].values
y_train = features.iloc[start:end][[1]]
sequence_length = int(past / step)

dataset_train = keras.preprocessing.timeseries_dataset_from_array(
    x_train, y_train, sequence_length=sequence_length, sampling_rate=step, batch_size=batch_size,
)

x_end = len(val_data) - past - future
label_start = train_split + past + future
x_val = val_data.iloc[:x_end][[i for i in range(3)]].values
y_val = features.iloc[label_start:][[1]]
dataset_val = keras.preprocessing.timeseries_dataset_from_array(
    x_val, y_val, sequence_length=sequence_length, sampling_rate=step, batch_size=batch_size,
)
# %%
inputs = keras.layers.Input(shape=(sequence_length, 3))
lstm_out = keras.layers.LSTM(8)(inputs)
outputs = keras.layers.Dense(1)(lstm_out)

model = keras.Model(inputs=inputs, outputs=outputs)
model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss="mse")
%repro_snapshot model
# %% fit
%%repro_fit model
path_checkpoint = "model_checkpoint.weights.h5"
es_callback = keras.callbacks.EarlyStopping(monitor="val_loss", min_delta=0, patience=5)

modelckpt_callback = keras.callbacks.ModelCheckpoint(
    monitor="val_loss", filepath=path_checkpoint, verbose=0, save_weights_only=True, save_best_only=True,
)

history = model.fit(
    dataset_train, epochs=epochs, validation_data=dataset_val, callbacks=[es_callback, modelckpt_callback],
    verbose=0,
)
''')

example("text_classification_with_transformer", "A transformer block (`MultiHeadAttention`) for text",
        ["examples/nlp/text_classification_with_transformer.py"],
        ["custom layers TransformerBlock and TokenAndPositionEmbedding", "MultiHeadAttention",
         "model rebuilt and re-snapshotted on a setting change (the block's dropout rate)"],
        "rate = 0.3", cells='''
# %%
import numpy as np
import keras
from keras import ops
from keras import layers
# %% parameters
rate = 0.1
# %%
class TransformerBlock(layers.Layer):
    def __init__(self, embed_dim, num_heads, ff_dim, rate=0.1):
        super().__init__()
        self.att = layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
        self.ffn = keras.Sequential([layers.Dense(ff_dim, activation="relu"), layers.Dense(embed_dim)])
        self.layernorm1 = layers.LayerNormalization(epsilon=1e-6)
        self.layernorm2 = layers.LayerNormalization(epsilon=1e-6)
        self.dropout1 = layers.Dropout(rate)
        self.dropout2 = layers.Dropout(rate)

    def call(self, inputs):
        attn_output = self.att(inputs, inputs)
        attn_output = self.dropout1(attn_output)
        out1 = self.layernorm1(inputs + attn_output)
        ffn_output = self.ffn(out1)
        ffn_output = self.dropout2(ffn_output)
        return self.layernorm2(out1 + ffn_output)


class TokenAndPositionEmbedding(layers.Layer):
    def __init__(self, maxlen, vocab_size, embed_dim):
        super().__init__()
        self.token_emb = layers.Embedding(input_dim=vocab_size, output_dim=embed_dim)
        self.pos_emb = layers.Embedding(input_dim=maxlen, output_dim=embed_dim)

    def call(self, x):
        maxlen = ops.shape(x)[-1]
        positions = ops.arange(start=0, stop=maxlen, step=1)
        positions = self.pos_emb(positions)
        x = self.token_emb(x)
        return x + positions
# %% md
Stand-in for IMDB as integer sequences: 256 + 64 reviews over a vocabulary of 200.
# %%
vocab_size = 200
maxlen = 20
rng = np.random.default_rng(0)
x_all = [rng.integers(1, vocab_size, rng.integers(5, 30)).tolist() for _ in range(320)]
y_all = np.array([int(sum(seq) / len(seq) > vocab_size / 2) for seq in x_all])
(x_train, y_train), (x_val, y_val) = (x_all[:256], y_all[:256]), (x_all[256:], y_all[256:])
x_train = keras.utils.pad_sequences(x_train, maxlen=maxlen)
x_val = keras.utils.pad_sequences(x_val, maxlen=maxlen)
# %% rerun
embed_dim = 16
num_heads = 2
ff_dim = 16

inputs = layers.Input(shape=(maxlen,))
embedding_layer = TokenAndPositionEmbedding(maxlen, vocab_size, embed_dim)
x = embedding_layer(inputs)
transformer_block = TransformerBlock(embed_dim, num_heads, ff_dim, rate)
x = transformer_block(x)
x = layers.GlobalAveragePooling1D()(x)
x = layers.Dropout(0.1)(x)
x = layers.Dense(8, activation="relu")(x)
x = layers.Dropout(0.1)(x)
outputs = layers.Dense(2, activation="softmax")(x)

model = keras.Model(inputs=inputs, outputs=outputs)
# %% rerun
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
%repro_snapshot model
# %% fit
%%repro_fit model
history = model.fit(x_train, y_train, batch_size=32, epochs=2, validation_data=(x_val, y_val), verbose=0)
''')

example("3d_image_classification", "3D CNN with BatchNormalization, a rotation in `tf.numpy_function`",
        ["examples/vision/3D_image_classification.py"],
        ["Conv3D + BatchNormalization", "tf.data map running Python (scipy rotate, random.choice)",
         "ExponentialDecay schedule", "ModelCheckpoint(save_best_only), EarlyStopping"],
        "noise = 0.6", cells='''
# %%
import random

import numpy as np
import tensorflow as tf
import keras
from keras import layers
from scipy import ndimage
# %% parameters
noise = 0.3
# %% md
Stand-in for the CT scans: 64 + 16 volumes of 16x16x8, an anomaly or not.
# %% rerun
rng = np.random.default_rng(0)
labels_all = rng.integers(0, 2, 80).astype("float32")
volumes = rng.random((80, 16, 16, 8)) * noise
volumes[labels_all == 1, 4:12, 4:12, 2:6] += 0.5
volumes = np.clip(volumes, 0, 1).astype("float32")
x_train, y_train = volumes[:64], labels_all[:64]
x_val, y_val = volumes[64:], labels_all[64:]
# %%
def rotate(volume):
    """Rotate the volume by a few degrees"""

    def scipy_rotate(volume):
        angles = [-20, -10, -5, 5, 10, 20]
        angle = random.choice(angles)
        volume = ndimage.rotate(volume, angle, reshape=False)
        volume[volume < 0] = 0
        volume[volume > 1] = 1
        return volume

    augmented_volume = tf.numpy_function(scipy_rotate, [volume], tf.float32)
    augmented_volume.set_shape(volume.shape)  # not in the example: Keras 3.15 refuses the unknown shape
    return augmented_volume


def train_preprocessing(volume, label):
    volume = rotate(volume)
    volume = tf.expand_dims(volume, axis=3)
    return volume, label


def validation_preprocessing(volume, label):
    volume = tf.expand_dims(volume, axis=3)
    return volume, label
# %% rerun
train_loader = tf.data.Dataset.from_tensor_slices((x_train, y_train))
validation_loader = tf.data.Dataset.from_tensor_slices((x_val, y_val))

batch_size = 16
train_dataset = train_loader.shuffle(len(x_train)).map(train_preprocessing).batch(batch_size).prefetch(2)
validation_dataset = validation_loader.shuffle(len(x_val)).map(validation_preprocessing).batch(batch_size).prefetch(2)
# %%
def get_model(width=16, height=16, depth=8):
    inputs = keras.Input((width, height, depth, 1))

    x = layers.Conv3D(filters=4, kernel_size=3, activation="relu")(inputs)
    x = layers.MaxPool3D(pool_size=2)(x)
    x = layers.BatchNormalization()(x)

    x = layers.Conv3D(filters=8, kernel_size=3, activation="relu", padding="same")(x)
    x = layers.MaxPool3D(pool_size=2)(x)
    x = layers.BatchNormalization()(x)

    x = layers.GlobalAveragePooling3D()(x)
    x = layers.Dense(units=16, activation="relu")(x)
    x = layers.Dropout(0.3)(x)

    outputs = layers.Dense(units=1, activation="sigmoid")(x)

    model = keras.Model(inputs, outputs, name="3dcnn")
    return model


model = get_model(width=16, height=16, depth=8)
# %%
initial_learning_rate = 0.0001
lr_schedule = keras.optimizers.schedules.ExponentialDecay(
    initial_learning_rate, decay_steps=100000, decay_rate=0.96, staircase=True
)
model.compile(
    loss="binary_crossentropy",
    optimizer=keras.optimizers.Adam(learning_rate=lr_schedule),
    metrics=["acc"],
    run_eagerly=False,
)
%repro_snapshot model
# %%
checkpoint_cb = keras.callbacks.ModelCheckpoint("3d_image_classification.keras", save_best_only=True)
early_stopping_cb = keras.callbacks.EarlyStopping(monitor="val_acc", patience=15)
# %% fit
%%repro_fit model
epochs = 2
history = model.fit(
    train_dataset,
    validation_data=validation_dataset,
    epochs=epochs,
    shuffle=True,
    verbose=0,
    callbacks=[checkpoint_cb, early_stopping_cb],
)
''')

example("imbalanced_classification", "Imbalanced classification with class weights",
        ["examples/structured_data/imbalanced_classification.py"],
        ["class_weight", "six confusion-matrix metrics", "ModelCheckpoint every epoch"],
        "fraud_fraction = 0.1", cells='''
# %%
import numpy as np
import keras
# %% parameters
fraud_fraction = 0.05
# %% md
Stand-in for the credit-card fraud CSV: 400 transactions of 30 features, a few of them fraud.
# %% rerun
rng = np.random.default_rng(0)
features = rng.normal(size=(400, 30)).astype("float32")
targets = (rng.random((400, 1)) < fraud_fraction).astype("uint8")
features[targets[:, 0] == 1, :3] += 2.0

num_val_samples = int(len(features) * 0.2)
train_features = features[:-num_val_samples]
train_targets = targets[:-num_val_samples]
val_features = features[-num_val_samples:]
val_targets = targets[-num_val_samples:]

counts = np.bincount(train_targets[:, 0])
weight_for_0 = 1.0 / counts[0]
weight_for_1 = 1.0 / counts[1]

mean = np.mean(train_features, axis=0)
train_features -= mean
val_features -= mean
std = np.std(train_features, axis=0)
train_features /= std
val_features /= std
# %%
model = keras.Sequential(
    [
        keras.Input(shape=train_features.shape[1:]),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dropout(0.3),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dropout(0.3),
        keras.layers.Dense(1, activation="sigmoid"),
    ]
)
# %%
metrics = [
    keras.metrics.FalseNegatives(name="fn"),
    keras.metrics.FalsePositives(name="fp"),
    keras.metrics.TrueNegatives(name="tn"),
    keras.metrics.TruePositives(name="tp"),
    keras.metrics.Precision(name="precision"),
    keras.metrics.Recall(name="recall"),
]

model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy", metrics=metrics)
%repro_snapshot model
# %% fit
%%repro_fit model
callbacks = [keras.callbacks.ModelCheckpoint("fraud_model_at_epoch_{epoch}.keras")]
class_weight = {0: weight_for_0, 1: weight_for_1}

history = model.fit(
    train_features,
    train_targets,
    batch_size=64,
    epochs=2,
    verbose=0,
    callbacks=callbacks,
    validation_data=(val_features, val_targets),
    class_weight=class_weight,
)
''')

example("timeseries_anomaly_detection", "Conv1D autoencoder with `EarlyStopping(restore_best_weights=True)`",
        ["examples/timeseries/timeseries_anomaly_detection.py"],
        ["EarlyStopping(restore_best_weights=True) (the example's callback, restoring)", "Conv1DTranspose"],
        "noise = 0.3", cells='''
# %%
import numpy as np
import pandas as pd
import keras
from keras import layers
# %% parameters
noise = 0.1
# %% md
Stand-in for NAB's art_daily_small_noise: a daily cycle sampled every 5 minutes, 3 days.
# %% rerun
rng = np.random.default_rng(0)
t = np.arange(864)
df_small_noise = pd.DataFrame({"value": 20 + 40 * (np.sin(2 * np.pi * t / 288) > 0) + noise * 10 * rng.normal(size=864)})
training_mean = df_small_noise.mean()
training_std = df_small_noise.std()
df_training_value = (df_small_noise - training_mean) / training_std
TIME_STEPS = 32


def create_sequences(values, time_steps=TIME_STEPS):
    output = []
    for i in range(0, len(values) - time_steps + 1, 4):
        output.append(values[i : (i + time_steps)])
    return np.stack(output)


x_train = create_sequences(df_training_value.values)
# %%
model = keras.Sequential(
    [
        layers.Input(shape=(x_train.shape[1], x_train.shape[2])),
        layers.Conv1D(filters=8, kernel_size=7, padding="same", strides=2, activation="relu"),
        layers.Dropout(rate=0.2),
        layers.Conv1D(filters=4, kernel_size=7, padding="same", strides=2, activation="relu"),
        layers.Conv1DTranspose(filters=4, kernel_size=7, padding="same", strides=2, activation="relu"),
        layers.Dropout(rate=0.2),
        layers.Conv1DTranspose(filters=8, kernel_size=7, padding="same", strides=2, activation="relu"),
        layers.Conv1DTranspose(filters=1, kernel_size=7, padding="same"),
    ]
)
model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.001), loss="mse")
%repro_snapshot model
# %% fit
%%repro_fit model
history = model.fit(
    x_train,
    x_train,
    epochs=4,
    batch_size=32,
    validation_split=0.1,
    callbacks=[
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=1, mode="min", restore_best_weights=True)
    ],
    verbose=0,
)
''')

example("denoising_autoencoder", "Convolutional denoising autoencoder", ["examples/vision/autoencoder.py"],
        ["denoising autoencoder", "noise drawn with np.random in the data cell", "shuffle=True"],
        "noise_factor = 0.2", cells='''
# %%
import numpy as np
import keras
from keras import layers
from keras.models import Model
# %% parameters
noise_factor = 0.4
# %%
def preprocess(array):
    array = array.astype("float32") / 255.0
    array = np.reshape(array, (len(array), 16, 16, 1))
    return array


def noise(array):
    noisy_array = array + noise_factor * np.random.normal(loc=0.0, scale=1.0, size=array.shape)
    return np.clip(noisy_array, 0.0, 1.0)
# %% md
Stand-in for MNIST: 160 + 32 grey 16x16 images.
# %%
rng = np.random.default_rng(0)
train_data = preprocess(rng.integers(0, 256, size=(160, 16, 16)))
test_data = preprocess(rng.integers(0, 256, size=(32, 16, 16)))
# %% rerun
noisy_train_data = noise(train_data)
noisy_test_data = noise(test_data)
# %%
input = layers.Input(shape=(16, 16, 1))

x = layers.Conv2D(8, (3, 3), activation="relu", padding="same")(input)
x = layers.MaxPooling2D((2, 2), padding="same")(x)
x = layers.Conv2D(8, (3, 3), activation="relu", padding="same")(x)
x = layers.MaxPooling2D((2, 2), padding="same")(x)

x = layers.Conv2DTranspose(8, (3, 3), strides=2, activation="relu", padding="same")(x)
x = layers.Conv2DTranspose(8, (3, 3), strides=2, activation="relu", padding="same")(x)
x = layers.Conv2D(1, (3, 3), activation="sigmoid", padding="same")(x)

autoencoder = Model(input, x)
autoencoder.compile(optimizer="adam", loss="binary_crossentropy")
%repro_snapshot autoencoder
# %% fit
%%repro_fit autoencoder
history = autoencoder.fit(
    x=noisy_train_data,
    y=train_data,
    epochs=1,
    batch_size=32,
    shuffle=True,
    validation_data=(noisy_test_data, test_data),
    verbose=0,
)
''', model="autoencoder")

example("siamese_contrastive", "Siamese network with a contrastive loss", ["examples/vision/siamese_contrastive.py"],
        ["two inputs through one shared tower", "Lambda layer (euclidean distance)",
         "loss from a closure (margin)", "pairs drawn with Python's random"],
        "margin = 0.5", model="siamese", cells='''
# %%
import random

import numpy as np
import keras
from keras import ops
# %% parameters
margin = 1
# %% md
Stand-in for MNIST: 160 + 40 grey 16x16 images of 10 classes.
# %%
rng = np.random.default_rng(0)
x_train_val = rng.random((200, 16, 16)).astype("float32")
y_train_val = rng.integers(0, 10, 200)
x_train, x_val = x_train_val[:160], x_train_val[160:]
y_train, y_val = y_train_val[:160], y_train_val[160:]
# %%
def make_pairs(x, y):
    num_classes = max(y) + 1
    digit_indices = [np.where(y == i)[0] for i in range(num_classes)]

    pairs = []
    labels = []

    for idx1 in range(len(x)):
        x1 = x[idx1]
        label1 = y[idx1]
        idx2 = random.choice(digit_indices[label1])
        x2 = x[idx2]

        pairs += [[x1, x2]]
        labels += [0]

        label2 = random.randint(0, num_classes - 1)
        while label2 == label1:
            label2 = random.randint(0, num_classes - 1)

        idx2 = random.choice(digit_indices[label2])
        x2 = x[idx2]

        pairs += [[x1, x2]]
        labels += [1]

    return np.array(pairs), np.array(labels).astype("float32")


pairs_train, labels_train = make_pairs(x_train, y_train)
pairs_val, labels_val = make_pairs(x_val, y_val)
x_train_1 = pairs_train[:, 0]
x_train_2 = pairs_train[:, 1]
x_val_1 = pairs_val[:, 0]
x_val_2 = pairs_val[:, 1]
# %%
def euclidean_distance(vects):
    x, y = vects
    sum_square = ops.sum(ops.square(x - y), axis=1, keepdims=True)
    return ops.sqrt(ops.maximum(sum_square, keras.backend.epsilon()))


input = keras.layers.Input((16, 16, 1))
x = keras.layers.BatchNormalization()(input)
x = keras.layers.Conv2D(4, (3, 3), activation="tanh")(x)
x = keras.layers.AveragePooling2D(pool_size=(2, 2))(x)
x = keras.layers.Conv2D(16, (3, 3), activation="tanh")(x)
x = keras.layers.AveragePooling2D(pool_size=(2, 2))(x)
x = keras.layers.Flatten()(x)

x = keras.layers.BatchNormalization()(x)
x = keras.layers.Dense(10, activation="tanh")(x)
embedding_network = keras.Model(input, x)

input_1 = keras.layers.Input((16, 16, 1))
input_2 = keras.layers.Input((16, 16, 1))

tower_1 = embedding_network(input_1)
tower_2 = embedding_network(input_2)

merge_layer = keras.layers.Lambda(euclidean_distance, output_shape=(1,))([tower_1, tower_2])
normal_layer = keras.layers.BatchNormalization()(merge_layer)
output_layer = keras.layers.Dense(1, activation="sigmoid")(normal_layer)
siamese = keras.Model(inputs=[input_1, input_2], outputs=output_layer)
# %%
def loss(margin=1):
    def contrastive_loss(y_true, y_pred):
        square_pred = ops.square(y_pred)
        margin_square = ops.square(ops.maximum(margin - (y_pred), 0))
        return ops.mean((1 - y_true) * square_pred + (y_true) * margin_square)

    return contrastive_loss
# %% rerun
siamese.compile(loss=loss(margin=margin), optimizer="RMSprop", metrics=["accuracy"])
# %%
%repro_snapshot siamese
# %% fit
%%repro_fit siamese
history = siamese.fit(
    [x_train_1, x_train_2],
    labels_train,
    validation_data=([x_val_1, x_val_2], labels_val),
    batch_size=32,
    epochs=1,
    verbose=0,
)
''')
