"""What a trained model answers beyond its logits (torch level): penultimate-layer embeddings
(:mod:`.embeddings`) and Grad-CAM maps (:mod:`.gradcam`, Captum)."""
