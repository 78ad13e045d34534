"""Training: Zoo hyperparameters, the SB3 VecEnv adapter, callbacks, runs, references, Optuna.

Modules import Stable-Baselines3 (and torch); import them where they are used.
"""
