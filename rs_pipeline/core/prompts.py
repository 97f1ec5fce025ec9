"""Prompt texts shared by captioners and models: one home, so a prompt never drifts apart.

Base floor of `core`: imports nothing from rs_pipeline. A prompt's wording is part of a
captioner's identity (`prompt_version` in its id), so change it only with a new version.
"""

from __future__ import annotations

# The captioning prompt of the paper, used by the local VLM and the endpoint captioner alike.
CAPTION_PROMPT = "Provide a factual description highlighting important details in this picture."
