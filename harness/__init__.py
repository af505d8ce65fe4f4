"""The LatBench measurement harness (``latbench-measure``).

Build the pruned network of each architecture as the artifact a device needs, time it
with the two-stage quartile protocol, and write a LatBench dataset. Needs the
``harness`` extra (TensorFlow, LiteRT, ONNX, ONNX Runtime, h5py); nothing heavy is
imported until a builder or runner is used. See ``docs/harness.md``.
"""
