"""softedge offline pipeline: corpus -> tokenizer -> backbone -> ONNX (+int8) -> bundle."""
