"""The rules of preference data, written once: plain Python (no Django), imported by both apps and both trainers.

- `rlhf.preferences`: how an item's judgments become preference pairs (each / majority / agreed), with one
  strength rule (see that module).
- `rlhf.prompts`: chat-message rules, the optional input joined onto the instruction, the prompt-group id of the
  prompt-disjoint eval split, and the plain-text transcript formats.
- `rlhf.training`: what every training loop shares without torch (config checks, the stop signal).
- `rlhf.devices`: device and bf16 choice for torch code (imports torch; only the trainers use it).
"""
