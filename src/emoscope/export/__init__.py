"""Export trained runs to ONNX with the metadata the runtime (and anyone else) needs
(`emoscope.export.onnx.export_onnx`). Nothing is imported here, so the CLI can describe the
export verb without torch."""
