"""Convert a float TFLite model to ONNX, op by op, for the operators MediaPipe's face landmark and
blendshape models use. By default tensors keep TFLite's NHWC layout and convolutions and pooling
are wrapped in transposes; with `channels_first` (a pure convolutional network such as the
landmark model) every 4-D tensor is NCHW instead, and PReLU is written as alpha * x + (1 - alpha) *
relu(x) with the two products as 1x1 depthwise convolutions, so ONNX Runtime runs the whole network
in its blocked layout and adds each sum inside a convolution (the landmark network, one thread:
19 ms a face with transposes and PReLU, 8.0 ms with relu(x) + alpha * min(x, 0), 5.1 ms this way;
`CONVERTER_VERSION` names the converted files, so a change here converts a bundle again). Constants
stored as float16 (DEQUANTIZE) are folded into float32. Needs the `mesh` extra (`tflite`, `onnx`); the
result runs on onnxruntime alone (`emoscope.runtime.landmarker`).

Written for these two graphs, not as a general converter: an operator it does not know stops the
conversion with its name."""

from __future__ import annotations

import numpy as np

OPSET = 18
CONVERTER_VERSION = 3  # part of the converted models' cache folder name
NHWC_TO_NCHW, NCHW_TO_NHWC = [0, 3, 1, 2], [0, 2, 3, 1]


class ConversionError(ValueError):
    """The TFLite model uses something this converter does not handle."""


def _options(op, cls):
    table = op.BuiltinOptions()
    opts = cls()
    opts.Init(table.Bytes, table.Pos)
    return opts


def _same_pads(in_hw, kernel, strides, dilations) -> list[int]:
    """ONNX pads [top, left, bottom, right] of TFLite's SAME padding."""
    begin, end = [], []
    for n, k, s, d in zip(in_hw, kernel, strides, dilations):
        out = -(-n // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
        begin.append(total // 2)
        end.append(total - total // 2)
    return begin + end


def convert(tflite_bytes: bytes, input_name: str = "input", output_names: list[str] | None = None,
            channels_first: bool = False):
    """An `onnx.ModelProto` computing what the TFLite model computes (float32 in and out, the
    input and outputs in TFLite's own shapes)."""
    import onnx
    import tflite
    from onnx import TensorProto, helper, numpy_helper

    model = tflite.Model.GetRootAsModel(tflite_bytes, 0)
    graph = model.Subgraphs(0)
    op_names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
    np_types = {tflite.TensorType.FLOAT32: np.float32, tflite.TensorType.FLOAT16: np.float16,
                tflite.TensorType.INT32: np.int32, tflite.TensorType.INT64: np.int64}

    shapes = [tuple(int(d) for d in graph.Tensors(i).ShapeAsNumpy()) if graph.Tensors(i).ShapeLength() else ()
              for i in range(graph.TensorsLength())]
    consts: dict[int, np.ndarray] = {}
    for i in range(graph.TensorsLength()):
        t = graph.Tensors(i)
        data = model.Buffers(t.Buffer()).DataAsNumpy() if t.Buffer() else 0
        if not isinstance(data, int) and data.size:
            if t.Type() not in np_types:
                raise ConversionError(f"constant {t.Name().decode()} has TFLite type {t.Type()}")
            consts[i] = np.frombuffer(data.tobytes(), np_types[t.Type()]).reshape(shapes[i])

    nodes, initializers, counter = [], {}, [0]

    def name(i: int) -> str:
        return f"t{i}"

    def fresh(prefix: str) -> str:
        counter[0] += 1
        return f"{prefix}_{counter[0]}"

    def const(value: np.ndarray, prefix: str = "c") -> str:
        n = fresh(prefix)
        initializers[n] = numpy_helper.from_array(np.ascontiguousarray(value), n)
        return n

    def source(i: int) -> str:
        """The ONNX name of TFLite tensor `i` (constants become initializers once)."""
        if i in consts and name(i) not in initializers:
            value = consts[i].astype(np.float32) if consts[i].dtype == np.float16 else consts[i]
            initializers[name(i)] = numpy_helper.from_array(np.ascontiguousarray(value), name(i))
        return name(i)

    def node(kind: str, inputs: list[str], output: str | None = None, **attrs) -> str:
        output = output or fresh(kind.lower())
        nodes.append(helper.make_node(kind, inputs, [output], **attrs))
        return output

    def activation(x: str, fused: int, output: str) -> None:
        act = tflite.ActivationFunctionType
        if fused == act.NONE:
            node("Identity", [x], output)
        elif fused == act.RELU:
            node("Relu", [x], output)
        elif fused == act.RELU6:
            node("Clip", [x, const(np.float32(0)), const(np.float32(6))], output)
        elif fused == act.TANH:
            node("Tanh", [x], output)
        else:
            raise ConversionError(f"fused activation {fused} is not handled")

    def nchw(x: str) -> str:
        return x if channels_first else node("Transpose", [x], perm=NHWC_TO_NCHW)

    def nhwc(x: str, output: str | None = None) -> str:
        return node("Identity" if channels_first else "Transpose", [x], output,
                    **({} if channels_first else {"perm": NCHW_TO_NHWC}))

    def channel_vector(value: np.ndarray) -> np.ndarray:
        """A per-channel constant shaped for NCHW broadcasting ((..., C) -> (C, 1, 1))."""
        value = value.astype(np.float32)
        return value.reshape(-1, 1, 1) if value.ndim <= 3 and value.size == value.shape[-1] else \
            np.moveaxis(value, -1, 0)

    if channels_first:
        allowed = {"DEQUANTIZE", "CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "ADD", "PRELU", "LOGISTIC", "PAD",
                   "RESHAPE"}

    for k in range(graph.OperatorsLength()):
        op = graph.Operators(k)
        code = model.OperatorCodes(op.OpcodeIndex())
        kind = op_names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "?")
        ins, outs = list(op.InputsAsNumpy()), list(op.OutputsAsNumpy())
        out = name(outs[0])
        if channels_first and kind not in allowed:
            raise ConversionError(f"TFLite operator {kind} is not handled channels-first")
        if kind == "DEQUANTIZE":
            if ins[0] not in consts:
                raise ConversionError("DEQUANTIZE of a computed tensor is not handled")
            consts[outs[0]] = consts[ins[0]].astype(np.float32)
        elif kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            depthwise = kind == "DEPTHWISE_CONV_2D"
            o = _options(op, tflite.DepthwiseConv2DOptions if depthwise else tflite.Conv2DOptions)
            w = consts[ins[1]].astype(np.float32)
            channels = shapes[ins[0]][3]
            weight = w.transpose(3, 0, 1, 2) if depthwise else w.transpose(0, 3, 1, 2)  # 1HW(CM) / OHWI -> OIHW
            strides, dil = [o.StrideH(), o.StrideW()], [o.DilationHFactor(), o.DilationWFactor()]
            pads = (_same_pads(shapes[ins[0]][1:3], w.shape[1:3], strides, dil)
                    if o.Padding() == tflite.Padding.SAME else [0, 0, 0, 0])
            bias = [source(ins[2])] if len(ins) > 2 and ins[2] >= 0 else []
            if not channels_first and not depthwise and w.shape[1:3] == (1, 1) and strides == [1, 1]:
                # a 1x1 convolution of an NHWC tensor is a product over its last axis: no transposes
                y = node("MatMul", [source(ins[0]), const(np.ascontiguousarray(w.reshape(w.shape[0], -1).T), "w")])
                activation(node("Add", [y, *bias]) if bias else y, o.FusedActivationFunction(), out)
                continue
            y = node("Conv", [nchw(source(ins[0])), const(weight, "w"), *bias], strides=strides, dilations=dil,
                     pads=pads, group=channels if depthwise else 1)
            activation(nhwc(y), o.FusedActivationFunction(), out)
        elif kind == "MAX_POOL_2D":
            o = _options(op, tflite.Pool2DOptions)
            kernel, strides = [o.FilterHeight(), o.FilterWidth()], [o.StrideH(), o.StrideW()]
            pads = (_same_pads(shapes[ins[0]][1:3], kernel, strides, [1, 1])
                    if o.Padding() == tflite.Padding.SAME else [0, 0, 0, 0])
            y = node("MaxPool", [nchw(source(ins[0]))], kernel_shape=kernel, strides=strides, pads=pads)
            activation(nhwc(y), o.FusedActivationFunction(), out)
        elif kind in ("ADD", "SUB", "MUL", "DIV"):
            o = _options(op, {"ADD": tflite.AddOptions, "SUB": tflite.SubOptions, "MUL": tflite.MulOptions,
                              "DIV": tflite.DivOptions}[kind])
            y = node(kind.capitalize(), [source(ins[0]), source(ins[1])])
            activation(y, o.FusedActivationFunction(), out)
        elif kind == "PRELU":
            if channels_first:  # alpha * x + (1 - alpha) * relu(x), as two 1x1 depthwise convolutions
                x = source(ins[0])
                alpha = channel_vector(consts[ins[1]]).reshape(-1, 1, 1, 1)
                scaled = node("Conv", [x, const(alpha, "alpha")], group=alpha.shape[0])
                node("Add", [node("Conv", [node("Relu", [x]), const(1 - alpha, "alpha")], group=alpha.shape[0]), scaled],
                     out)
            else:
                node("PRelu", [source(ins[0]), source(ins[1])], out)
        elif kind == "LOGISTIC":
            node("Sigmoid", [source(ins[0])], out)
        elif kind == "SQRT":
            node("Sqrt", [source(ins[0])], out)
        elif kind == "RSQRT":
            node("Reciprocal", [node("Sqrt", [source(ins[0])])], out)
        elif kind == "NEG":
            node("Neg", [source(ins[0])], out)
        elif kind == "SQUARED_DIFFERENCE":
            d = node("Sub", [source(ins[0]), source(ins[1])])
            node("Mul", [d, d], out)
        elif kind in ("MEAN", "SUM"):
            keep = _options(op, tflite.ReducerOptions).KeepDims()
            axes = const(consts[ins[1]].astype(np.int64).reshape(-1), "axes")
            node("ReduceMean" if kind == "MEAN" else "ReduceSum", [source(ins[0]), axes], out, keepdims=int(keep))
        elif kind == "RESHAPE":
            target = consts[ins[1]] if len(ins) > 1 and ins[1] in consts else np.array(shapes[outs[0]])
            x = source(ins[0])
            if channels_first and len(shapes[ins[0]]) == 4:
                x = node("Transpose", [x], perm=NCHW_TO_NHWC)  # reshape reads NHWC order
            node("Reshape", [x, const(target.astype(np.int64).reshape(-1), "shape")], out)
        elif kind == "TRANSPOSE":
            node("Transpose", [source(ins[0])], out, perm=[int(p) for p in consts[ins[1]]])
        elif kind == "PAD":
            pads = consts[ins[1]].astype(np.int64)
            if channels_first:
                pads = pads[NHWC_TO_NCHW]
            node("Pad", [source(ins[0]), const(np.concatenate([pads[:, 0], pads[:, 1]]), "pads")], out)
        elif kind == "CONCATENATION":
            o = _options(op, tflite.ConcatenationOptions)
            y = node("Concat", [source(i) for i in ins], axis=o.Axis())
            activation(y, o.FusedActivationFunction(), out)
        elif kind == "STRIDED_SLICE":
            o = _options(op, tflite.StridedSliceOptions)
            if o.EllipsisMask() or o.NewAxisMask():
                raise ConversionError("STRIDED_SLICE with ellipsis or new axes is not handled")
            begin, end, step = (consts[i].astype(np.int64).copy() for i in ins[1:4])
            rank = len(shapes[ins[0]])
            big = np.iinfo(np.int64).max
            for axis in range(rank):
                if o.BeginMask() >> axis & 1:
                    begin[axis] = 0 if step[axis] > 0 else big
                if o.EndMask() >> axis & 1:
                    end[axis] = big if step[axis] > 0 else -big
                if o.ShrinkAxisMask() >> axis & 1:
                    end[axis] = begin[axis] + 1 if begin[axis] != -1 else big
            y = node("Slice", [source(ins[0]), const(begin, "b"), const(end, "e"),
                               const(np.arange(rank, dtype=np.int64), "a"), const(step, "s")])
            shrink = [a for a in range(rank) if o.ShrinkAxisMask() >> a & 1]
            if shrink:
                node("Squeeze", [y, const(np.array(shrink, np.int64), "sq")], out)
            else:
                node("Identity", [y], out)
        else:
            raise ConversionError(f"TFLite operator {kind} is not handled")

    (graph_in,), graph_outs = list(graph.InputsAsNumpy()), list(graph.OutputsAsNumpy())
    first = helper.make_node("Transpose", [input_name], [name(graph_in)], perm=NHWC_TO_NCHW) \
        if channels_first else helper.make_node("Identity", [input_name], [name(graph_in)])
    nodes.insert(0, first)
    output_names = output_names or [f"output{i}" for i in range(len(graph_outs))]
    for i, n in zip(graph_outs, output_names):
        if channels_first and len(shapes[i]) == 4:
            nodes.append(helper.make_node("Transpose", [name(i)], [n], perm=NCHW_TO_NHWC))
        else:
            nodes.append(helper.make_node("Identity", [name(i)], [n]))
    onnx_graph = helper.make_graph(
        nodes, "converted", [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, list(shapes[graph_in]))],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(shapes[i])) for i, n in zip(graph_outs, output_names)],
        list(initializers.values()))
    proto = helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="emoscope")
    proto.ir_version = 9
    onnx.checker.check_model(proto)
    return proto
