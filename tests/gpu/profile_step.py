"""Profile decode steps of a model folder with ONNX Runtime's profiler; print per-op time.

Usage: python tests/gpu/profile_step.py MODEL_FOLDER [--device cuda|cpu] [--steps N]
       [--out FILE.json]

Loads the model through the engine (the graph and binding the app uses), prefills a short
prompt, then turns the profiler on for ``--steps`` decode steps and sums the kernel time of
every node by operator type. The JSON summary goes to ``--out`` (and stdout); ORT's raw trace
is kept beside it.
"""
