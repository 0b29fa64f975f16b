"""TensorRT: the runner (runner.py, the ``tensorrt`` backend) and the engine builder beside it
(build.py: build and profiles; cache.py: engine cache names and reuse rules; device.py: the CUDA
device's facts and its selection around every TensorRT call), as Polygraphy keeps its runner and
loaders together.

The exporters call the builder at export time; nothing here imports an exporter. tensorrt itself
is imported only inside the functions that use it.
"""
