"""slimrl: learn split-inference control policies over real channel traces."""

__version__ = "0.1.0"


def _register_envs() -> None:
    """Register ``SlimSplit-v0`` (lazy entry points: importing slimrl stays cheap)."""
    from gymnasium.envs.registration import register, registry

    if "SlimSplit-v0" not in registry:
        register(
            id="SlimSplit-v0",
            entry_point="slimrl.env.slimsplit:SlimSplitEnv",
            vector_entry_point="slimrl.env.vector:SlimSplitVectorEnv",
        )


_register_envs()
