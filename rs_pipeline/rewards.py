"""The RL reward function, importable as `rs_pipeline.rewards.compute_score`.

Point verl / EasyR1 at it (e.g. `reward_function: rs_pipeline/rewards.py`,
`reward_function_name: compute_score`, `reward_function_kwargs: {reward_server_url: ...}`).
"""

from rs_pipeline.core.rewards.compute import compute_score

__all__ = ["compute_score"]
