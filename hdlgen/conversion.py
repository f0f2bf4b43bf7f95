"""Load a model and the data it is evaluated and calibrated on: the library's one way from files
to what :func:`hdlgen.passes.convert` takes, which the CLI (``convert``, ``bench``, ``compare``,
``finetune``) and the sweep's workers all call."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .data import Dataset, load_dataset
from .errors import UserError
from .importers import load_model

__all__ = ["ModelAndData", "load_model_and_data", "model_classes"]


@dataclass(frozen=True)
class ModelAndData:
    """A model's graph (:mod:`hdlgen.ir`), its labelled data and the samples that calibrate it."""

    graph: object
    data: Dataset
    calibration: Dataset


def model_classes(graph) -> int:
    """How many logits ``graph`` gives: its labels are ``0..classes − 1``."""
    return int(np.prod(graph.shapes()[-1]))


def load_model_and_data(model, data, calibration_data=None, *, calibration_samples: int = 2000) -> ModelAndData:
    """``model``'s graph, the labelled ``data`` shaped for it and the first ``calibration_samples``
    of ``calibration_data`` (unlabelled; default: ``data``). A :class:`UserError` naming the file
    for a model or data the importers or the loader refuse."""
    if calibration_samples < 1:
        raise UserError(f"calibration samples must be ≥ 1, got {calibration_samples}")
    graph = load_model(Path(model))
    shape = graph.input_shape
    labelled = load_dataset(data, shape, classes=model_classes(graph))
    calibration = load_dataset(calibration_data, shape, need_labels=False) if calibration_data else labelled
    return ModelAndData(graph, labelled, calibration.head(calibration_samples))
