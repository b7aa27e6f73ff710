"""Write the example notebooks of tests/test_keras_examples.py (run it to regenerate them).

Each notebook is an official keras.io example (Keras 3 version; its source file is named in
the first cell), shrunk to synthetic data made in the notebook and one or two short epochs,
with ONLY the README's three edits: ``%load_ext jupyter_repro`` / ``%repro_seed 42`` first,
``%repro_snapshot MODEL`` after compile, ``%%repro_fit`` on the training cell. A
parameters cell holds the setting the test visits A, B, A.

Cells are written below in the percent format (``# %%``), with a role after it:

* ``parameters`` -- the setting (its source is A; ``b=`` in the example gives B's);
* ``rerun`` -- a cell the user runs again after changing the parameters (it reads them);
* ``fit`` -- the training cell the test revisits (other ``%%repro_fit`` cells run once);
* ``md`` -- markdown.

Cells after the ``fit`` cell (an evaluation, a reload) run on every visit, after it.
"""
from __future__ import annotations

import os

import nbformat

HERE = os.path.dirname(os.path.abspath(__file__))

EXAMPLES = []


def example(name, title, source, patterns, b, cells, model="model", result="history.history", extra=()):
    """``cells``: percent-format text; ``b``: the parameters cell's source for B; ``model``: the
    fit cell's model; ``result``: what the fit returns, hashed with the variables; ``extra``:
    names of optimizers outside the model whose variables are hashed too."""
    EXAMPLES.append(dict(name=name, title=title, source=source, patterns=patterns, b=b, cells=cells,
                         model=model, result=result, extra=list(extra)))


def parse(text):
    cells = []
    for chunk in text.strip("\n").split("# %%")[1:]:
        head, _, body = chunk.partition("\n")
        role = head.strip()
        cells.append((role, body.strip("\n")))
    return cells


def write(ex):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["repro_example"] = {"source": ex["source"], "patterns": ex["patterns"], "b": ex["b"],
                                    "model": ex["model"], "result": ex["result"], "extra": ex["extra"]}
    sources = " and ".join(f"`{s}`" for s in ex["source"])
    nb.cells.append(nbformat.v4.new_markdown_cell(
        f"# {ex['title']}\n\nAdapted from keras.io {sources} (Keras 3), shrunk to synthetic data made "
        "here and short epochs; the only other edits are the README's: `%load_ext jupyter_repro` and "
        "`%repro_seed 42` first, `%repro_snapshot` after compile, `%%repro_fit` on the training cell.\n\n"
        f"Exercises: {', '.join(ex['patterns'])}. The parameters cell is visited A, B, A by "
        "`tests/test_keras_examples.py` (B: `" + ex["b"].replace("\n", "; ") + "`)."))
    nb.cells.append(nbformat.v4.new_code_cell("%load_ext jupyter_repro\n%repro_seed 42"))
    for role, body in parse(ex["cells"]):
        if role == "md":
            nb.cells.append(nbformat.v4.new_markdown_cell(body))
            continue
        cell = nbformat.v4.new_code_cell(body)
        if role:
            cell.metadata["tags"] = [role]
        nb.cells.append(cell)
    for index, cell in enumerate(nb.cells):
        cell["id"] = f"{ex['name'][:40]}-{index}"
    nbformat.validate(nb)
    with open(os.path.join(HERE, ex["name"] + ".ipynb"), "w") as out:
        nbformat.write(nb, out)


# --------------------------------------------------------------------------------------------------
# The five patterns of issue #31
# --------------------------------------------------------------------------------------------------

GAN_IMPORTS = '''
# %%
import numpy as np
import keras
import tensorflow as tf
from keras import layers, ops
'''

example("dcgan_overriding_train_step", "DCGAN overriding `train_step`",
        ["examples/generative/dcgan_overriding_train_step.py"],
        ["custom compile(d_optimizer, g_optimizer, loss_fn)", "SeedGenerator in train_step"],
        "d_learning_rate = 0.0001", model="gan", cells=GAN_IMPORTS + '''
# %% parameters
d_learning_rate = 0.0003
# %% md
Stand-in for CelebA: 128 grey 16x16 images (the example reads 64x64 JPEGs from a folder).
# %%
pixels = np.random.default_rng(0).integers(0, 256, size=(128, 16, 16, 1)).astype("float32")
dataset = tf.data.Dataset.from_tensor_slices(pixels).batch(32)
dataset = dataset.map(lambda x: x / 255.0)
# %%
discriminator = keras.Sequential(
    [
        keras.Input(shape=(16, 16, 1)),
        layers.Conv2D(8, kernel_size=4, strides=2, padding="same"),
        layers.LeakyReLU(negative_slope=0.2),
        layers.Conv2D(16, kernel_size=4, strides=2, padding="same"),
        layers.LeakyReLU(negative_slope=0.2),
        layers.Flatten(),
        layers.Dropout(0.2),
        layers.Dense(1, activation="sigmoid"),
    ],
    name="discriminator",
)
latent_dim = 16
generator = keras.Sequential(
    [
        keras.Input(shape=(latent_dim,)),
        layers.Dense(4 * 4 * 16),
        layers.Reshape((4, 4, 16)),
        layers.Conv2DTranspose(16, kernel_size=4, strides=2, padding="same"),
        layers.LeakyReLU(negative_slope=0.2),
        layers.Conv2DTranspose(8, kernel_size=4, strides=2, padding="same"),
        layers.LeakyReLU(negative_slope=0.2),
        layers.Conv2D(1, kernel_size=5, padding="same", activation="sigmoid"),
    ],
    name="generator",
)
# %%
class GAN(keras.Model):
    def __init__(self, discriminator, generator, latent_dim):
        super().__init__()
        self.discriminator = discriminator
        self.generator = generator
        self.latent_dim = latent_dim
        self.seed_generator = keras.random.SeedGenerator(1337)

    def compile(self, d_optimizer, g_optimizer, loss_fn):
        super().compile()
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        self.loss_fn = loss_fn
        self.d_loss_metric = keras.metrics.Mean(name="d_loss")
        self.g_loss_metric = keras.metrics.Mean(name="g_loss")

    @property
    def metrics(self):
        return [self.d_loss_metric, self.g_loss_metric]

    def train_step(self, real_images):
        batch_size = ops.shape(real_images)[0]
        random_latent_vectors = keras.random.normal(
            shape=(batch_size, self.latent_dim), seed=self.seed_generator
        )
        generated_images = self.generator(random_latent_vectors)
        combined_images = ops.concatenate([generated_images, real_images], axis=0)
        labels = ops.concatenate(
            [ops.ones((batch_size, 1)), ops.zeros((batch_size, 1))], axis=0
        )
        labels += 0.05 * tf.random.uniform(tf.shape(labels))
        with tf.GradientTape() as tape:
            predictions = self.discriminator(combined_images)
            d_loss = self.loss_fn(labels, predictions)
        grads = tape.gradient(d_loss, self.discriminator.trainable_weights)
        self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_weights))
        random_latent_vectors = keras.random.normal(
            shape=(batch_size, self.latent_dim), seed=self.seed_generator
        )
        misleading_labels = ops.zeros((batch_size, 1))
        with tf.GradientTape() as tape:
            predictions = self.discriminator(self.generator(random_latent_vectors))
            g_loss = self.loss_fn(misleading_labels, predictions)
        grads = tape.gradient(g_loss, self.generator.trainable_weights)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_weights))
        self.d_loss_metric.update_state(d_loss)
        self.g_loss_metric.update_state(g_loss)
        return {"d_loss": self.d_loss_metric.result(), "g_loss": self.g_loss_metric.result()}
# %%
gan = GAN(discriminator=discriminator, generator=generator, latent_dim=latent_dim)
# %% rerun
gan.compile(
    d_optimizer=keras.optimizers.Adam(learning_rate=d_learning_rate),
    g_optimizer=keras.optimizers.Adam(learning_rate=0.0003),
    loss_fn=keras.losses.BinaryCrossentropy(),
)
# %%
%repro_snapshot gan
# %% fit
%%repro_fit gan
history = gan.fit(dataset, epochs=1, verbose=0)
''')

example("wgan_gp", "WGAN-GP overriding `train_step`", ["examples/generative/wgan_gp.py"],
        ["custom compile(d_optimizer, g_optimizer, d_loss_fn, g_loss_fn)", "gradient penalty",
         "tf.random in train_step"],
        "g_learning_rate = 0.0005", model="wgan", cells=GAN_IMPORTS + '''
# %% parameters
g_learning_rate = 0.0002
# %% md
Stand-in for Fashion-MNIST: 128 grey 16x16 images scaled to [-1, 1] as the example does.
# %%
train_images = np.random.default_rng(0).integers(0, 256, size=(128, 16, 16, 1)).astype("float32")
train_images = (train_images - 127.5) / 127.5
IMG_SHAPE = (16, 16, 1)
BATCH_SIZE = 32
noise_dim = 16
# %%
def get_discriminator_model():
    img_input = layers.Input(shape=IMG_SHAPE)
    x = layers.Conv2D(8, (5, 5), strides=(2, 2), padding="same")(img_input)
    x = layers.LeakyReLU(0.2)(x)
    x = layers.Conv2D(16, (5, 5), strides=(2, 2), padding="same")(x)
    x = layers.LeakyReLU(0.2)(x)
    x = layers.Dropout(0.3)(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.2)(x)
    x = layers.Dense(1)(x)
    return keras.models.Model(img_input, x, name="discriminator")


def get_generator_model():
    noise = layers.Input(shape=(noise_dim,))
    x = layers.Dense(4 * 4 * 16, use_bias=False)(noise)
    x = layers.BatchNormalization()(x)
    x = layers.LeakyReLU(0.2)(x)
    x = layers.Reshape((4, 4, 16))(x)
    x = layers.UpSampling2D((2, 2))(x)
    x = layers.Conv2D(8, (3, 3), padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.LeakyReLU(0.2)(x)
    x = layers.UpSampling2D((2, 2))(x)
    x = layers.Conv2D(1, (3, 3), padding="same", use_bias=False)(x)
    x = layers.Activation("tanh")(x)
    return keras.models.Model(noise, x, name="generator")


d_model = get_discriminator_model()
g_model = get_generator_model()
# %%
class WGAN(keras.Model):
    def __init__(self, discriminator, generator, latent_dim, discriminator_extra_steps=3, gp_weight=10.0):
        super().__init__()
        self.discriminator = discriminator
        self.generator = generator
        self.latent_dim = latent_dim
        self.d_steps = discriminator_extra_steps
        self.gp_weight = gp_weight

    def compile(self, d_optimizer, g_optimizer, d_loss_fn, g_loss_fn):
        super().compile()
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        self.d_loss_fn = d_loss_fn
        self.g_loss_fn = g_loss_fn

    def gradient_penalty(self, batch_size, real_images, fake_images):
        alpha = tf.random.uniform([batch_size, 1, 1, 1], 0.0, 1.0)
        diff = fake_images - real_images
        interpolated = real_images + alpha * diff
        with tf.GradientTape() as gp_tape:
            gp_tape.watch(interpolated)
            pred = self.discriminator(interpolated, training=True)
        grads = gp_tape.gradient(pred, [interpolated])[0]
        norm = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=[1, 2, 3]))
        gp = tf.reduce_mean((norm - 1.0) ** 2)
        return gp

    def train_step(self, real_images):
        if isinstance(real_images, tuple):
            real_images = real_images[0]
        batch_size = tf.shape(real_images)[0]
        for i in range(self.d_steps):
            random_latent_vectors = tf.random.normal(shape=(batch_size, self.latent_dim))
            with tf.GradientTape() as tape:
                fake_images = self.generator(random_latent_vectors, training=True)
                fake_logits = self.discriminator(fake_images, training=True)
                real_logits = self.discriminator(real_images, training=True)
                d_cost = self.d_loss_fn(real_img=real_logits, fake_img=fake_logits)
                gp = self.gradient_penalty(batch_size, real_images, fake_images)
                d_loss = d_cost + gp * self.gp_weight
            d_gradient = tape.gradient(d_loss, self.discriminator.trainable_variables)
            self.d_optimizer.apply_gradients(zip(d_gradient, self.discriminator.trainable_variables))
        random_latent_vectors = tf.random.normal(shape=(batch_size, self.latent_dim))
        with tf.GradientTape() as tape:
            generated_images = self.generator(random_latent_vectors, training=True)
            gen_img_logits = self.discriminator(generated_images, training=True)
            g_loss = self.g_loss_fn(gen_img_logits)
        gen_gradient = tape.gradient(g_loss, self.generator.trainable_variables)
        self.g_optimizer.apply_gradients(zip(gen_gradient, self.generator.trainable_variables))
        return {"d_loss": d_loss, "g_loss": g_loss}
# %%
def discriminator_loss(real_img, fake_img):
    real_loss = tf.reduce_mean(real_img)
    fake_loss = tf.reduce_mean(fake_img)
    return fake_loss - real_loss


def generator_loss(fake_img):
    return -tf.reduce_mean(fake_img)


wgan = WGAN(discriminator=d_model, generator=g_model, latent_dim=noise_dim, discriminator_extra_steps=3)
# %% rerun
generator_optimizer = keras.optimizers.Adam(learning_rate=g_learning_rate, beta_1=0.5, beta_2=0.9)
discriminator_optimizer = keras.optimizers.Adam(learning_rate=0.0002, beta_1=0.5, beta_2=0.9)
wgan.compile(
    d_optimizer=discriminator_optimizer,
    g_optimizer=generator_optimizer,
    g_loss_fn=generator_loss,
    d_loss_fn=discriminator_loss,
)
# %%
%repro_snapshot wgan
# %% fit
%%repro_fit wgan
history = wgan.fit(train_images, batch_size=BATCH_SIZE, epochs=1, verbose=0)
''')

example("collaborative_filtering_movielens", "Collaborative filtering (MovieLens), a subclassed model",
        ["examples/structured_data/collaborative_filtering_movielens.py"],
        ["subclassed model snapshotted right after compile (unbuilt)"],
        "train_fraction = 0.8", cells='''
# %%
import numpy as np
import pandas as pd
import keras
from keras import layers, ops
# %% parameters
train_fraction = 0.9
# %% md
Stand-in for ml-latest-small: 600 ratings of 40 movies by 30 users.
# %%
rng = np.random.default_rng(0)
df = pd.DataFrame({"userId": rng.integers(100, 130, 600), "movieId": rng.integers(1000, 1040, 600),
                   "rating": rng.integers(1, 11, 600) / 2.0})
user_ids = df["userId"].unique().tolist()
user2user_encoded = {x: i for i, x in enumerate(user_ids)}
movie_ids = df["movieId"].unique().tolist()
movie2movie_encoded = {x: i for i, x in enumerate(movie_ids)}
df["user"] = df["userId"].map(user2user_encoded)
df["movie"] = df["movieId"].map(movie2movie_encoded)
num_users = len(user2user_encoded)
num_movies = len(movie_ids)
df["rating"] = df["rating"].values.astype(np.float32)
min_rating = min(df["rating"])
max_rating = max(df["rating"])
# %% rerun
shuffled = df.sample(frac=1, random_state=42)
x = shuffled[["user", "movie"]].values
y = shuffled["rating"].apply(lambda x: (x - min_rating) / (max_rating - min_rating)).values
train_indices = int(train_fraction * shuffled.shape[0])
x_train, x_val, y_train, y_val = (x[:train_indices], x[train_indices:], y[:train_indices], y[train_indices:])
# %%
EMBEDDING_SIZE = 8


class RecommenderNet(keras.Model):
    def __init__(self, num_users, num_movies, embedding_size, **kwargs):
        super().__init__(**kwargs)
        self.num_users = num_users
        self.num_movies = num_movies
        self.embedding_size = embedding_size
        self.user_embedding = layers.Embedding(
            num_users, embedding_size, embeddings_initializer="he_normal",
            embeddings_regularizer=keras.regularizers.l2(1e-6),
        )
        self.user_bias = layers.Embedding(num_users, 1)
        self.movie_embedding = layers.Embedding(
            num_movies, embedding_size, embeddings_initializer="he_normal",
            embeddings_regularizer=keras.regularizers.l2(1e-6),
        )
        self.movie_bias = layers.Embedding(num_movies, 1)

    def call(self, inputs):
        user_vector = self.user_embedding(inputs[:, 0])
        user_bias = self.user_bias(inputs[:, 0])
        movie_vector = self.movie_embedding(inputs[:, 1])
        movie_bias = self.movie_bias(inputs[:, 1])
        dot_user_movie = ops.tensordot(user_vector, movie_vector, 2)
        x = dot_user_movie + user_bias + movie_bias
        return ops.nn.sigmoid(x)


model = RecommenderNet(num_users, num_movies, EMBEDDING_SIZE)
model.compile(
    loss=keras.losses.BinaryCrossentropy(),
    optimizer=keras.optimizers.Adam(learning_rate=0.001),
)
%repro_snapshot model
# %% fit
%%repro_fit model
history = model.fit(x=x_train, y=y_train, batch_size=64, epochs=1, verbose=0, validation_data=(x_val, y_val))
''')

example("structured_data_classification_with_feature_space", "Structured data with FeatureSpace",
        ["examples/structured_data/structured_data_classification_with_feature_space.py"],
        ["FeatureSpace applied in a tf.data map", "FeatureSpace crosses"],
        'numeric = "float_rescaled"', model="training_model", cells='''
# %%
import numpy as np
import pandas as pd
import tensorflow as tf
import keras
from keras.utils import FeatureSpace
# %% parameters
numeric = "float_normalized"
# %% md
Stand-in for the Cleveland heart-disease CSV: 240 patients, the same columns and kinds.
# %%
rng = np.random.default_rng(0)
n = 240
dataframe = pd.DataFrame({
    "age": rng.integers(29, 78, n), "sex": rng.integers(0, 2, n), "cp": rng.integers(0, 5, n),
    "trestbps": rng.integers(94, 200, n), "chol": rng.integers(126, 565, n), "fbs": rng.integers(0, 2, n),
    "restecg": rng.integers(0, 3, n), "thalach": rng.integers(71, 203, n), "exang": rng.integers(0, 2, n),
    "oldpeak": rng.uniform(0, 6.2, n).round(1), "slope": rng.integers(1, 4, n), "ca": rng.integers(0, 4, n),
    "thal": rng.choice(["fixed", "normal", "reversible"], n),
})
dataframe["target"] = ((dataframe["cp"] > 2) ^ (dataframe["thalach"] < 120)).astype(int)
val_dataframe = dataframe.sample(frac=0.2, random_state=1337)
train_dataframe = dataframe.drop(val_dataframe.index)
# %% rerun
def dataframe_to_dataset(dataframe):
    dataframe = dataframe.copy()
    labels = dataframe.pop("target")
    ds = tf.data.Dataset.from_tensor_slices((dict(dataframe), labels))
    ds = ds.shuffle(buffer_size=len(dataframe))
    return ds


train_ds = dataframe_to_dataset(train_dataframe)
val_ds = dataframe_to_dataset(val_dataframe)
train_ds = train_ds.batch(32)
val_ds = val_ds.batch(32)
# %% rerun
feature_space = FeatureSpace(
    features={
        "sex": FeatureSpace.integer_categorical(num_oov_indices=0),
        "thal": FeatureSpace.string_categorical(num_oov_indices=0),
        "age": FeatureSpace.float_discretized(num_bins=30),
        "cp": FeatureSpace.integer_categorical(num_oov_indices=0),
        "fbs": FeatureSpace.integer_categorical(num_oov_indices=0),
        "restecg": FeatureSpace.integer_categorical(num_oov_indices=0),
        "exang": FeatureSpace.integer_categorical(num_oov_indices=0),
        "ca": FeatureSpace.integer_categorical(num_oov_indices=0),
        "trestbps": numeric,
        "chol": numeric,
        "thalach": numeric,
        "oldpeak": numeric,
        "slope": numeric,
    },
    crosses=[
        FeatureSpace.cross(feature_names=("sex", "age"), crossing_dim=64),
        FeatureSpace.cross(feature_names=("thal", "ca"), crossing_dim=16),
    ],
    output_mode="concat",
)
# %% rerun
train_ds_with_no_labels = train_ds.map(lambda x, _: x)
feature_space.adapt(train_ds_with_no_labels)
# %% rerun
preprocessed_train_ds = train_ds.map(lambda x, y: (feature_space(x), y), num_parallel_calls=tf.data.AUTOTUNE)
preprocessed_train_ds = preprocessed_train_ds.prefetch(tf.data.AUTOTUNE)
preprocessed_val_ds = val_ds.map(lambda x, y: (feature_space(x), y), num_parallel_calls=tf.data.AUTOTUNE)
preprocessed_val_ds = preprocessed_val_ds.prefetch(tf.data.AUTOTUNE)
# %%
dict_inputs = feature_space.get_inputs()
encoded_features = feature_space.get_encoded_features()
x = keras.layers.Dense(32, activation="relu")(encoded_features)
x = keras.layers.Dropout(0.5)(x)
predictions = keras.layers.Dense(1, activation="sigmoid")(x)
training_model = keras.Model(inputs=encoded_features, outputs=predictions)
training_model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
inference_model = keras.Model(inputs=dict_inputs, outputs=predictions)
# %%
%repro_snapshot training_model
# %% fit
%%repro_fit training_model
history = training_model.fit(preprocessed_train_ds, epochs=2, validation_data=preprocessed_val_ds, verbose=0)
''')

example("timeseries_classification_from_scratch", "FordA time series classification, best model reloaded",
        ["examples/timeseries/timeseries_classification_from_scratch.py"],
        ["load_model of the ModelCheckpoint's best after each fit", "BatchNormalization",
         "ReduceLROnPlateau, EarlyStopping"],
        "noise = 1.0", cells='''
# %%
import numpy as np
import keras
# %% parameters
noise = 0.5
# %% md
Stand-in for FordA: 200 + 60 series of 64 steps, labels -1 / 1 as in the UCR files.
# %% rerun
def readucr(n, seed):
    rng = np.random.default_rng(seed)
    y = rng.choice([-1, 1], n)
    t = np.linspace(0, 4 * np.pi, 64)
    x = np.where(y[:, None] > 0, np.sin(t), np.sign(np.sin(t))) + noise * rng.normal(size=(n, 64))
    return x.astype("float32"), y


x_train, y_train = readucr(200, 1)
x_test, y_test = readucr(60, 2)
x_train = x_train.reshape((x_train.shape[0], x_train.shape[1], 1))
x_test = x_test.reshape((x_test.shape[0], x_test.shape[1], 1))
num_classes = len(np.unique(y_train))
idx = np.random.permutation(len(x_train))
x_train = x_train[idx]
y_train = y_train[idx]
y_train[y_train == -1] = 0
y_test[y_test == -1] = 0
# %%
def make_model(input_shape):
    input_layer = keras.layers.Input(input_shape)

    conv1 = keras.layers.Conv1D(filters=8, kernel_size=3, padding="same")(input_layer)
    conv1 = keras.layers.BatchNormalization()(conv1)
    conv1 = keras.layers.ReLU()(conv1)

    conv2 = keras.layers.Conv1D(filters=8, kernel_size=3, padding="same")(conv1)
    conv2 = keras.layers.BatchNormalization()(conv2)
    conv2 = keras.layers.ReLU()(conv2)

    conv3 = keras.layers.Conv1D(filters=8, kernel_size=3, padding="same")(conv2)
    conv3 = keras.layers.BatchNormalization()(conv3)
    conv3 = keras.layers.ReLU()(conv3)

    gap = keras.layers.GlobalAveragePooling1D()(conv3)

    output_layer = keras.layers.Dense(num_classes, activation="softmax")(gap)

    return keras.models.Model(inputs=input_layer, outputs=output_layer)


model = make_model(input_shape=x_train.shape[1:])
# %%
epochs = 2
batch_size = 32

callbacks = [
    keras.callbacks.ModelCheckpoint("best_model.keras", save_best_only=True, monitor="val_loss"),
    keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=20, min_lr=0.0001),
    keras.callbacks.EarlyStopping(monitor="val_loss", patience=50, verbose=1),
]
model.compile(
    optimizer="adam",
    loss="sparse_categorical_crossentropy",
    metrics=["sparse_categorical_accuracy"],
)
%repro_snapshot model
# %% fit
%%repro_fit model
history = model.fit(
    x_train, y_train, batch_size=batch_size, epochs=epochs, callbacks=callbacks,
    validation_split=0.2, verbose=0,
)
# %%
model = keras.models.load_model("best_model.keras")

test_loss, test_acc = model.evaluate(x_test, y_test, verbose=0)
''')

example("mnist_convnet_continue_from_checkpoint", "MNIST convnet, continued from its best checkpoint",
        ["examples/vision/mnist_convnet.py", "guides/training_with_built_in_methods.py"],
        ["load_weights(\"best.weights.h5\") between fits", "ModelCheckpoint(save_weights_only)"],
        "noise = 0.6", cells='''
# %%
import numpy as np
import keras
from keras import layers
# %% parameters
noise = 0.3
# %% md
Stand-in for MNIST: 3 digit templates on 16x16, with noise.
# %% rerun
num_classes = 3
input_shape = (16, 16, 1)
rng = np.random.default_rng(0)
templates = rng.random((num_classes, 16, 16, 1))
y_train = rng.integers(0, num_classes, 240)
x_train = np.clip(templates[y_train] + noise * rng.normal(size=(240, 16, 16, 1)), 0, 1).astype("float32")
y_train = keras.utils.to_categorical(y_train, num_classes)
# %%
model = keras.Sequential(
    [
        keras.Input(shape=input_shape),
        layers.Conv2D(8, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(16, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(num_classes, activation="softmax"),
    ]
)
batch_size = 32
model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
%repro_snapshot model
# %%
%%repro_fit model
checkpoint = keras.callbacks.ModelCheckpoint("best.weights.h5", save_weights_only=True, save_best_only=True,
                                             monitor="val_loss")
model.fit(x_train, y_train, batch_size=batch_size, epochs=2, validation_split=0.1, callbacks=[checkpoint],
          verbose=0)
# %% md
Continue from the best checkpoint, with the data of the parameters cell.
# %% rerun
model.load_weights("best.weights.h5")
# %% fit
%%repro_fit model
history = model.fit(x_train, y_train, batch_size=batch_size, epochs=1, validation_split=0.1, verbose=0)
''')


if __name__ == "__main__":
    import sys

    sys.path.insert(0, HERE)
    import make_notebooks   # this file as a module: more_examples registers into its list
    import more_examples  # noqa: F401  (the examples beyond the issue's five patterns)

    for ex in make_notebooks.EXAMPLES:
        make_notebooks.write(ex)
    print(f"wrote {len(make_notebooks.EXAMPLES)} notebooks to {HERE}")
