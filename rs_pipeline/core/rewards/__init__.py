"""The paper's RL reward (format gate + accuracy) and the scorer service's HTTP client.

`compute_score` (compute.py) is the verl / EasyR1 reward function, `ScorerReward` (trl.py) the
TRL GRPOTrainer one; both shape scores with shaping.py. No trainer is imported here.
"""
