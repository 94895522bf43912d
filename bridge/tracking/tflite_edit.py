"""Two small, reproducible edits to TFLite models, so the pose and face models inside the mediapipe 0.10.21
wheel run under MediaPipe's current Tasks API (used only by :mod:`bridge.tracking.model` when a bundle is
rebuilt; nothing here runs at show time).

Why edits are needed at all (measured with mediapipe 1.2.x):

* ``pose_landmark_full.tflite`` has no TFLite metadata. The Tasks API refuses a float image input without
  ``NormalizationOptions`` ("it requires specifying NormalizationOptions metadata"). :func:`add_image_metadata`
  adds the same metadata the wheel's other landmark models carry (pixels / 255: inputs 0..1, RGB).
* ``face_landmark_with_attention.tflite`` (the 478-point model with refined lips, eyes and irises) has seven
  outputs: mesh, lips, left eye, right eye, left iris, right iris, face flag. The legacy graph merged them with
  a ``LandmarksRefinementCalculator``; the Tasks graph instead expects exactly two outputs, ``[478 x 3
  landmarks, face flag]``, and takes output 1 as the presence score. Given the raw model it reads the lips
  tensor as the score (and fails, "num_values == 1 (160 vs. 1)"); the 468-point ``face_landmark.tflite``
  lacks the 10 iris points the Tasks graph decodes. That is why naively rebuilt face bundles gave wrong
  landmarks. :func:`merge_face_refinement` adds the legacy refinement *inside* the model as plain TFLite ops
  (reshape, gather, concatenation, mean), so the model itself outputs the 478 refined points:

  - x, y: the mesh's points, replaced by the lips' and eyes' points at their mesh indices, then the 5 + 5
    iris points (indices 468..477), exactly as MediaPipe's ``tensors_to_face_landmarks_with_attention``
    graph lists them;
  - z: the mesh's z (the lips and eyes carry none); each iris point gets the mean z of its eye's 16 contour
    points (that graph's ``assign_average``).

Both edits rewrite the flatbuffer through the schema's object API (``mediapipe.tasks.metadata``, which
mediapipe ships) with weight buffers 16-byte aligned, as the TFLite converter writes them. The output is a
pure function of the input bytes and the flatbuffers builder (the shipped files were written with
flatbuffers 25.12.19), so a rebuild is byte-identical.
"""
from __future__ import annotations

import flatbuffers
import numpy as np

# Indices from MediaPipe's tensors_to_face_landmarks_with_attention.pbtxt (mesh index of each refined point).
LIPS = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 185, 40, 39, 37, 0, 267, 269, 270, 409,
        78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 191, 80, 81, 82, 13, 312, 311, 310, 415,
        76, 77, 90, 180, 85, 16, 315, 404, 320, 307, 306, 184, 74, 73, 72, 11, 302, 303, 304, 408,
        62, 96, 89, 179, 86, 15, 316, 403, 319, 325, 292, 183, 42, 41, 38, 12, 268, 271, 272, 407)
LEFT_EYE = (33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173,
            130, 25, 110, 24, 23, 22, 26, 112, 243, 247, 30, 29, 27, 28, 56, 190,
            226, 31, 228, 229, 230, 231, 232, 233, 244, 113, 225, 224, 223, 222, 221, 189,
            35, 124, 46, 53, 52, 65, 143, 111, 117, 118, 119, 120, 121, 128, 245,
            156, 70, 63, 105, 66, 107, 55, 193)
RIGHT_EYE = (263, 249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385, 384, 398,
             359, 255, 339, 254, 253, 252, 256, 341, 463, 467, 260, 259, 257, 258, 286, 414,
             446, 261, 448, 449, 450, 451, 452, 453, 464, 342, 445, 444, 443, 442, 441, 413,
             265, 353, 276, 283, 282, 295, 372, 340, 346, 347, 348, 349, 350, 357, 465,
             383, 300, 293, 334, 296, 336, 285, 417)
MESH_POINTS, IRIS_POINTS = 468, 5
FACE_POINTS = MESH_POINTS + 2 * IRIS_POINTS  # 478
# The raw model's outputs, in order, with their point counts and coordinates per point.
FACE_OUTPUTS = (("mesh", MESH_POINTS, 3), ("lips", len(LIPS), 2), ("left_eye", len(LEFT_EYE), 2),
                ("right_eye", len(RIGHT_EYE), 2), ("left_iris", IRIS_POINTS, 2), ("right_iris", IRIS_POINTS, 2),
                ("face_flag", 1, 1))
_ALIGN = 16


def _schema():
    from mediapipe.tasks.metadata import metadata_schema_py_generated as meta
    from mediapipe.tasks.metadata import schema_py_generated as tfl

    return tfl, meta


class TFLiteEditError(ValueError):
    """The model is not the one the edit was written for."""


# ------------------------------------------------------------------------------------------------
# Reading and writing models
# ------------------------------------------------------------------------------------------------
def _unpack(data: bytes):
    tfl, _ = _schema()
    return tfl.ModelT.InitFromObj(tfl.Model.GetRootAs(bytearray(data), 0))


def _pack(model) -> bytes:
    """Serialise ``model`` with every buffer's bytes 16-byte aligned (the converter's ``force_align``)."""
    tfl, _ = _schema()
    for i, buf in enumerate(model.buffers):
        model.buffers[i] = _AlignedBuffer(buf.data)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


class _AlignedBuffer:
    """Stands in for ``BufferT`` when packing: the same table, data vector aligned to 16 bytes."""

    def __init__(self, data) -> None:
        self.data = None if data is None else np.asarray(data, dtype=np.uint8)

    def Pack(self, builder):  # noqa: N802 - the flatbuffers object API's name
        tfl, _ = _schema()
        vector = None
        if self.data is not None and len(self.data):
            raw = self.data.tobytes()
            builder.StartVector(1, len(raw), _ALIGN)
            builder.head = builder.head - len(raw)
            builder.Bytes[builder.head:builder.head + len(raw)] = raw
            vector = builder.EndVector()
        tfl.BufferStart(builder)
        if vector is not None:
            tfl.BufferAddData(builder, vector)
        return tfl.BufferEnd(builder)


def read_metadata(data: bytes):
    """The model's TFLITE_METADATA as a ``ModelMetadataT`` (None if it has none)."""
    tfl, meta = _schema()
    model = tfl.Model.GetRootAs(bytearray(data), 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() == b"TFLITE_METADATA":
            raw = model.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
            return meta.ModelMetadataT.InitFromObj(meta.ModelMetadata.GetRootAs(bytearray(raw), 0))
    return None


def _set_metadata(model, metadata) -> None:
    """Store ``metadata`` (a ModelMetadataT) as the model's TFLITE_METADATA, replacing any there."""
    tfl, _ = _schema()
    builder = flatbuffers.Builder(1024)
    builder.Finish(metadata.Pack(builder), file_identifier=b"M001")
    payload = np.frombuffer(bytes(builder.Output()), dtype=np.uint8)
    for entry in model.metadata or []:
        if entry.name in (b"TFLITE_METADATA", "TFLITE_METADATA"):
            model.buffers[entry.buffer] = _buffer(payload)
            return
    buf = _buffer(payload)
    model.buffers.append(buf)
    entry = tfl.MetadataT()
    entry.name = "TFLITE_METADATA"
    entry.buffer = len(model.buffers) - 1
    model.metadata = (model.metadata or []) + [entry]


def _buffer(data: np.ndarray):
    tfl, _ = _schema()
    buf = tfl.BufferT()
    buf.data = data
    return buf


def _tensor_meta(name: str, description: str = ""):
    _, meta = _schema()
    t = meta.TensorMetadataT()
    t.name = name
    t.description = description or None
    return t


# ------------------------------------------------------------------------------------------------
# Edit 1: image metadata for a model that has none
# ------------------------------------------------------------------------------------------------
def add_image_metadata(data: bytes, name: str, output_names: tuple[str, ...]) -> bytes:
    """``data`` with TFLite metadata saying: one RGB image input, float, scaled to 0..1 (pixel / 255).

    Refuses a model that already has metadata or whose input/output counts differ from what is described.
    """
    _, meta = _schema()
    if read_metadata(data) is not None:
        raise TFLiteEditError(f"{name}: the model already has TFLite metadata")
    model = _unpack(data)
    graph = model.subgraphs[0]
    if len(graph.inputs) != 1 or len(graph.outputs) != len(output_names):
        raise TFLiteEditError(f"{name}: expected 1 input and {len(output_names)} outputs, found "
                              f"{len(graph.inputs)} and {len(graph.outputs)}")
    image = _tensor_meta("image", "Input image, RGB, pixel values divided by 255.")
    image.content = meta.ContentT()
    image.content.contentPropertiesType = meta.ContentProperties.ImageProperties
    image.content.contentProperties = meta.ImagePropertiesT()
    image.content.contentProperties.colorSpace = meta.ColorSpaceType.RGB
    norm = meta.ProcessUnitT()
    norm.optionsType = meta.ProcessUnitOptions.NormalizationOptions
    norm.options = meta.NormalizationOptionsT()
    norm.options.mean, norm.options.std = [0.0], [255.0]
    image.processUnits = [norm]
    image.stats = meta.StatsT()
    image.stats.min, image.stats.max = [0.0], [1.0]
    subgraph = meta.SubGraphMetadataT()
    subgraph.inputTensorMetadata = [image]
    subgraph.outputTensorMetadata = [_tensor_meta(n) for n in output_names]
    metadata = meta.ModelMetadataT()
    metadata.name = name
    metadata.description = "Metadata added by visual-reactive-bridge (bridge/tracking/tflite_edit.py)."
    metadata.minParserVersion = "1.0.0"
    metadata.subgraphMetadata = [subgraph]
    _set_metadata(model, metadata)
    return _pack(model)


# ------------------------------------------------------------------------------------------------
# Edit 2: the face model's refinement graph, inside the model
# ------------------------------------------------------------------------------------------------
def refinement_indices() -> tuple[np.ndarray, np.ndarray]:
    """For each of the 478 output points: its row in the stacked x,y table, and in the z table.

    The x,y table stacks the raw outputs' points in output order (mesh 0..467, then lips, eyes, irises).
    Later refinements win, as in the legacy graph. The z table is the mesh's 468 z values followed by the
    two eyes' average contour z (rows 468 and 469).
    """
    rows = np.arange(FACE_POINTS, dtype=np.int32)
    offset = MESH_POINTS
    for mapping in (LIPS, LEFT_EYE, RIGHT_EYE):
        rows[list(mapping)] = offset + np.arange(len(mapping), dtype=np.int32)
        offset += len(mapping)
    rows[MESH_POINTS:] = offset + np.arange(2 * IRIS_POINTS, dtype=np.int32)
    z_rows = np.concatenate([np.arange(MESH_POINTS), np.full(IRIS_POINTS, MESH_POINTS),
                             np.full(IRIS_POINTS, MESH_POINTS + 1)]).astype(np.int32)
    return rows, z_rows


# The 16 contour points (lower contour, then upper without corners) whose mean z each iris takes.
IRIS_Z_CONTOURS = (LEFT_EYE[:16], RIGHT_EYE[:16])


class _GraphEditor:
    """Appends tensors, constants and builtin ops to subgraph 0 of a ModelT."""

    def __init__(self, model) -> None:
        self.tfl, _ = _schema()
        self.model = model
        self.graph = model.subgraphs[0]
        self._codes: dict[int, int] = {}

    def tensor(self, name: str, shape, dtype=None) -> int:
        t = self.tfl.TensorT()
        t.shape = list(shape)
        t.type = self.tfl.TensorType.FLOAT32 if dtype is None else dtype
        t.buffer = 0
        t.name = name
        self.graph.tensors.append(t)
        return len(self.graph.tensors) - 1

    def const(self, name: str, values: np.ndarray) -> int:
        values = np.ascontiguousarray(values, dtype=np.int32)
        index = self.tensor(name, values.shape, self.tfl.TensorType.INT32)
        self.model.buffers.append(_buffer(np.frombuffer(values.tobytes(), dtype=np.uint8)))
        self.graph.tensors[index].buffer = len(self.model.buffers) - 1
        return index

    def op(self, code: int, inputs, outputs, options_type: int = 0, options=None) -> None:
        op = self.tfl.OperatorT()
        op.opcodeIndex = self._opcode(code)
        op.inputs, op.outputs = list(inputs), list(outputs)
        op.builtinOptionsType, op.builtinOptions = options_type, options
        self.graph.operators.append(op)

    def _opcode(self, code: int) -> int:
        if code not in self._codes:
            for i, existing in enumerate(self.model.operatorCodes):
                if max(existing.builtinCode, existing.deprecatedBuiltinCode) == code and not existing.customCode:
                    self._codes[code] = i
                    break
            else:
                entry = self.tfl.OperatorCodeT()
                entry.builtinCode = entry.deprecatedBuiltinCode = code
                entry.version = 1
                self.model.operatorCodes.append(entry)
                self._codes[code] = len(self.model.operatorCodes) - 1
        return self._codes[code]

    def reshape(self, name: str, source: int, shape) -> int:
        out = self.tensor(name, shape)
        options = self.tfl.ReshapeOptionsT()
        options.newShape = list(shape)
        self.op(self.tfl.BuiltinOperator.RESHAPE, [source, self.const(name + "/shape", np.array(shape))], [out],
                self.tfl.BuiltinOptions.ReshapeOptions, options)
        return out

    def gather(self, name: str, source: int, indices: np.ndarray, shape, axis: int) -> int:
        out = self.tensor(name, shape)
        options = self.tfl.GatherOptionsT()
        options.axis = axis
        self.op(self.tfl.BuiltinOperator.GATHER, [source, self.const(name + "/indices", indices)], [out],
                self.tfl.BuiltinOptions.GatherOptions, options)
        return out

    def concat(self, name: str, sources, shape, axis: int) -> int:
        out = self.tensor(name, shape)
        options = self.tfl.ConcatenationOptionsT()
        options.axis = axis
        self.op(self.tfl.BuiltinOperator.CONCATENATION, sources, [out],
                self.tfl.BuiltinOptions.ConcatenationOptions, options)
        return out

    def mean(self, name: str, source: int, axis: int, shape) -> int:
        out = self.tensor(name, shape)
        options = self.tfl.ReducerOptionsT()
        options.keepDims = False
        self.op(self.tfl.BuiltinOperator.MEAN, [source, self.const(name + "/axis", np.array([axis]))], [out],
                self.tfl.BuiltinOptions.ReducerOptions, options)
        return out


def merge_face_refinement(data: bytes) -> bytes:
    """The attention face model with two outputs, ``[1, 1434]`` refined landmarks and the face flag.

    See the module docstring. Checks that the model's outputs are the seven it was written for.
    """
    model = _unpack(data)
    graph = model.subgraphs[0]
    sizes = [int(np.prod(graph.tensors[i].shape)) for i in graph.outputs]
    expected = [points * dims for _, points, dims in FACE_OUTPUTS]
    if sizes != expected:
        raise TFLiteEditError(f"not MediaPipe's face landmark model with attention: output sizes {sizes}, "
                              f"expected {expected}")
    edit = _GraphEditor(model)
    raw = dict(zip([name for name, _, _ in FACE_OUTPUTS], graph.outputs))
    mesh = edit.reshape("vrb/mesh", raw["mesh"], [MESH_POINTS, 3])
    mesh_xy = edit.gather("vrb/mesh_xy", mesh, np.array([0, 1]), [MESH_POINTS, 2], axis=1)
    mesh_z = edit.gather("vrb/mesh_z", mesh, np.array([2]), [MESH_POINTS, 1], axis=1)
    parts = [mesh_xy]
    total = MESH_POINTS
    for name, points, _ in FACE_OUTPUTS[1:6]:
        parts.append(edit.reshape(f"vrb/{name}", raw[name], [points, 2]))
        total += points
    table_xy = edit.concat("vrb/xy_table", parts, [total, 2], axis=0)
    rows, z_rows = refinement_indices()
    xy = edit.gather("vrb/xy", table_xy, rows, [FACE_POINTS, 2], axis=0)
    contours = edit.gather("vrb/iris_contour_z", mesh_z, np.array(IRIS_Z_CONTOURS), [2, 16, 1], axis=0)
    iris_z = edit.mean("vrb/iris_z", contours, 1, [2, 1])
    table_z = edit.concat("vrb/z_table", [mesh_z, iris_z], [MESH_POINTS + 2, 1], axis=0)
    z = edit.gather("vrb/z", table_z, z_rows, [FACE_POINTS, 1], axis=0)
    points = edit.concat("vrb/points", [xy, z], [FACE_POINTS, 3], axis=1)
    landmarks = edit.reshape("vrb/landmarks", points, [1, FACE_POINTS * 3])
    graph.outputs = [landmarks, raw["face_flag"]]
    model.signatureDefs = None  # they named the seven raw outputs
    metadata = read_metadata(data)
    if metadata is not None:
        metadata.subgraphMetadata[0].outputTensorMetadata = [
            _tensor_meta("landmarks", "478 refined face landmarks (x, y, z in input pixels), refined in-model."),
            _tensor_meta("face_flag")]
        _set_metadata(model, metadata)
    return _pack(model)
