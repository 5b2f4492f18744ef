"""A custom feature step, and the ONNX converter that keeps a pipeline with it servable by ONNX Runtime.

Without a registered converter, skl2onnx cannot convert a pipeline containing `SignedLog1p`; the
candidate then serves with scikit-learn, and its run records why (`onnx_detail`). Registering a
converter (below) is how your own steps get ONNX: describe the output shape, and emit the same
computation as ONNX operators.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from skl2onnx import update_registered_converter
from skl2onnx.algebra.onnx_ops import OnnxAbs, OnnxAdd, OnnxLog, OnnxMul, OnnxSign
from skl2onnx.common.data_types import guess_numpy_type
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin


class SignedLog1p(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """sign(x) * log(1 + |x|): compresses heavy tails (spend, counts) and keeps the sign and zero.

    Stateless, so `fit` learns nothing; it still validates its input like any sklearn transformer.
    """

    def fit(self, x: Any, y: Any = None) -> SignedLog1p:
        values = np.asarray(x, dtype=np.float64)
        self.n_features_in_ = values.shape[1]
        return self

    def transform(self, x: Any) -> np.ndarray:
        values = np.asarray(x, dtype=np.float64)
        return np.sign(values) * np.log1p(np.abs(values))


def _shape(operator: Any) -> None:
    """Same shape and element type out as in."""
    source = operator.inputs[0].type
    operator.outputs[0].type = source.__class__(source.shape)


def _convert(scope: Any, operator: Any, container: Any) -> None:
    """sign(x) * log(|x| + 1) as ONNX operators, in the input's element type."""
    x = operator.inputs[0]
    opset = container.target_opset
    dtype = guess_numpy_type(x.type)
    one = np.array([1], dtype=dtype)
    magnitude = OnnxLog(OnnxAdd(OnnxAbs(x, op_version=opset), one, op_version=opset), op_version=opset)
    result = OnnxMul(
        OnnxSign(x, op_version=opset), magnitude, op_version=opset, output_names=operator.outputs[:1]
    )
    result.add_to(scope, container)


update_registered_converter(SignedLog1p, "TeamModelsSignedLog1p", _shape, _convert)
