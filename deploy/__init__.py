"""ONNX export and TensorFlow-free inference for the trained classifier."""
