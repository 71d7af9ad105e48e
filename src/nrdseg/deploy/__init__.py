"""Using a trained model: predict on image files, export (ONNX, TorchScript, .pt2), share."""
