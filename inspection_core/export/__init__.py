"""Export a bundle's whole scoring graph to ONNX or OpenVINO (see :mod:`.writer`)."""
