"""Build the seed study's CNN, train it once, and return the metrics as a plain dict.

``run`` is the importable API: benchmarks call it many times in one process with one
``Dataset`` so TensorFlow (~8 s) and the data are loaded once. TensorFlow is imported
here lazily, after TF_CPP_MIN_LOG_LEVEL is set, so its noise stays off stdout.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

import numpy as np

from kubetune_trainer.config import TrainConfig
from kubetune_trainer.data import NUM_CLASSES, Dataset, Split, batches, load

THREADS_ENV = "KUBETUNE_TRAINER_THREADS"
_tf_ready = False


def _import_tf() -> Any:
    """Import TensorFlow quietly, once, honouring KUBETUNE_TRAINER_THREADS."""
    global _tf_ready
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    if not _tf_ready:
        threads = os.environ.get(THREADS_ENV, "").strip()
        if threads:
            if not threads.isdigit() or int(threads) < 1:
                raise ValueError(f"{THREADS_ENV}={threads!r}: expected a positive integer")
            try:
                tf.config.threading.set_intra_op_parallelism_threads(int(threads))
                tf.config.threading.set_inter_op_parallelism_threads(int(threads))
            except RuntimeError as err:  # the host process already started TF's runtime
                import logging

                logging.getLogger("kubetune_trainer").warning("%s ignored: %s",
                                                              THREADS_ENV, err)
        _tf_ready = True
    return tf


def build_model(cfg: TrainConfig, channels: int) -> Any:
    """conv-ReLU-pool x2, FC-ReLU, dropout, 10 logits (softmax lives in the loss)."""
    import keras
    from keras import layers

    return keras.Sequential([
        keras.Input(shape=(32, 32, channels)),
        layers.Conv2D(cfg.conv1_depth, cfg.conv1_width, padding="same", activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(cfg.conv2_depth, cfg.conv2_width, padding="same", activation="relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(cfg.fc_units, activation="relu"),
        layers.Dropout(1.0 - cfg.keep_prob),
        layers.Dense(NUM_CLASSES),
    ])


def _tf_dataset(tf: Any, split: Split, cfg: TrainConfig, channels: int,
                rng: np.random.Generator | None) -> Any:
    """A tf.data pipeline over the numpy batch generator (reshuffled each pass when rng)."""
    spec = (tf.TensorSpec((None, 32, 32, channels), tf.float32),
            tf.TensorSpec((None,), tf.uint8))
    ds = tf.data.Dataset.from_generator(
        lambda: batches(split, cfg.batch_size, cfg.grayscale, rng), output_signature=spec)
    # Known length: Keras then neither warns about running out of data nor guesses steps.
    ds = ds.apply(tf.data.experimental.assert_cardinality(-(-len(split) // cfg.batch_size)))
    return ds.prefetch(2)


def _finite(value: Any) -> float | None:
    """JSON has no NaN: a non-finite metric becomes null."""
    out = float(value)
    return round(out, 6) if math.isfinite(out) else None


def run(config: TrainConfig, data: Dataset | None = None) -> dict[str, Any]:
    """Train once; returns {"status": "ok", metrics...} or {"status": "failed", "reason"}.

    ``data`` (from ``data.load``) fixes the split, so its seed/val_fraction/max_train_images
    come from the config it was loaded with; only the hyperparameters come from ``config``.

    A NaN/inf training loss stops training at once and is reported as failed (the
    engine must never feed such a trial to the GP as a number).
    """
    if data is None:
        data = load(config)
    elif data.name != config.dataset:
        raise ValueError(f"data set {data.name!r} was loaded, config asks for "
                         f"{config.dataset!r}")
    tf = _import_tf()
    import keras

    # Frees Keras' global state between trials in one process. It does not free
    # everything: with TF 2.21 / Keras 3.15 every ``fit`` leaves its traced graphs
    # behind (38 FuncGraphs with RMSprop, ~8-11 MB; ``evaluate`` leaves none), the
    # upstream leak keras-team/keras#17458. Callers that run many trials in one
    # process recycle it (benchmarks/seed_reproduction.py: every 150 trials); the
    # operator and ``kubetune run`` start a fresh process per trial.
    keras.backend.clear_session()
    keras.utils.set_random_seed(config.seed)
    channels = 1 if config.grayscale else 3
    model = build_model(config, channels)
    model.compile(
        optimizer=keras.optimizers.RMSprop(learning_rate=config.learning_rate,
                                           rho=config.decay, momentum=config.momentum),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )

    failure: dict[str, Any] = {}

    class StopOnNaN(keras.callbacks.Callback):
        """Like TerminateOnNaN, but remembers where, for the reason message."""

        epoch = 0

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.epoch = epoch

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(float(loss)):
                failure["reason"] = f"NaN loss at epoch {self.epoch + 1} batch {batch + 1}"
                failure["epoch"] = self.epoch + 1
                self.model.stop_training = True

    rng = np.random.default_rng(config.seed)
    train_ds = _tf_dataset(tf, data.train, config, channels, rng)
    started = time.perf_counter()
    history = model.fit(train_ds, epochs=config.epochs, callbacks=[StopOnNaN()], shuffle=False,
                        verbose=2 if config.verbose else 0)
    train_seconds = time.perf_counter() - started
    epochs_done = len(history.history.get("loss", []))
    base: dict[str, Any] = {
        "train_seconds": round(train_seconds, 3),
        "epochs": epochs_done,
        "train_images": len(data.train),
        "val_images": len(data.val),
    }
    if failure:
        return {"status": "failed", "reason": failure["reason"], **base}

    verbose = 2 if config.verbose else 0
    val_loss, val_acc = model.evaluate(_tf_dataset(tf, data.val, config, channels, None),
                                       verbose=verbose)
    if not math.isfinite(val_loss):
        return {"status": "failed", "reason": "NaN validation loss", **base}
    result: dict[str, Any] = {
        "status": "ok",
        "val_accuracy": round(float(val_acc), 6),
        "val_loss": round(float(val_loss), 6),
    }
    if data.test is not None:
        test_loss, test_acc = model.evaluate(
            _tf_dataset(tf, data.test, config, channels, None), verbose=verbose)
        result["test_accuracy"] = round(float(test_acc), 6)
        result["test_loss"] = _finite(test_loss)
        result["test_images"] = len(data.test)
    result.update(base)
    result["images_per_second"] = round(
        len(data.train) * epochs_done / train_seconds, 1) if train_seconds > 0 else None
    return result
