"""Studies and figures on top of everything else: FLOPs, the decoder and label-patch
studies, the demo."""
