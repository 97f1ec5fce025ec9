"""The VLM half of the method: supervised fine-tuning of a Qwen2-VL-family model on each
selection (`vlm_checkpoints`), VQA evaluation, and best-of-N answers ranked by the scorer
(`bon_eval`). Built on the training library, like `finetune/` is for CLIP."""
