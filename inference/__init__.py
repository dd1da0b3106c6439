"""Cat Watcher inference service: detects cats, their behaviour and (optionally) which cat.

Importing this package is cheap on purpose: `inference.contract` is used by the infrastructure
code, which must not pull in onnxruntime or the web server.
"""
