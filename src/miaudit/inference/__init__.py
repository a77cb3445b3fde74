"""What a trained model answers (torch level): its logits under the audit's queries (:mod:`.logits`),
penultimate-layer embeddings (:mod:`.embeddings`) and Grad-CAM maps (:mod:`.gradcam`, Captum)."""
