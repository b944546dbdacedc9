"""Running trained or imported separators over songs: chunking and stitching (`stitching`), the
separation pipeline with the Mixer (`separation`), ONNX export and its cache (`onnx_export`), ONNX Runtime
sessions of our exports and of imported files (`onnx_runtime`), and the import records read at separation
time (`imported`)."""
