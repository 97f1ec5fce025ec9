"""One chat format for training and asking: a user turn (image + question), the reply.

Training, greedy answers and best-of-N samples all go through these functions, so a model is
asked exactly the way it was taught (Qwen2-VL's chat template, one image per turn).
"""

from __future__ import annotations

IMAGE_TOKEN = "<image>"  # where ShareGPT/LLaMA-Factory records put the image in the user text


def user_turn(question: str) -> list[dict]:
    """Messages of one question about one image, in transformers' multimodal chat format."""
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]


def prompt_text(processor, question: str) -> str:
    """The templated prompt up to the assistant's turn (what generation continues)."""
    return processor.apply_chat_template(
        user_turn(question), tokenize=False, add_generation_prompt=True
    )


def reply_text(processor, answer: str) -> str:
    """The assistant turn's text after the prompt, with its end-of-turn token."""
    full = processor.apply_chat_template(
        user_turn("") + [{"role": "assistant", "content": answer}], tokenize=False
    )
    prompt = prompt_text(processor, "")
    if not full.startswith(prompt):
        raise ValueError("the chat template does not continue the generation prompt verbatim")
    return full[len(prompt) :]
