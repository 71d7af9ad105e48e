"""Using a trained model: predict on image files, export (ONNX, TorchScript, .pt2) and
check the exported file against PyTorch. (Hub sharing is `checkpoint.hub`.)"""
