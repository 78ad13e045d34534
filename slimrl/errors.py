"""Errors that slimrl reports to users: each message names the file, field or value at fault."""


class SlimrlError(Exception):
    """Base class: the CLI prints these as one line and exits with code 2."""


class TraceError(SlimrlError):
    """A trace file or trace folder that cannot be read."""


class ProfileError(SlimrlError):
    """A model or device profile that cannot be read."""


class ScenarioError(SlimrlError):
    """A scenario file, or an override of one, that is invalid."""


class DataError(SlimrlError):
    """A dataset file that is missing or corrupt."""


class ModelError(SlimrlError):
    """A model checkpoint or payload that cannot be used."""


class PolicyError(SlimrlError):
    """A policy name or path that resolves to nothing usable."""


class BundleError(SlimrlError):
    """An exported policy bundle that fails verification."""


class HyperparamsError(SlimrlError):
    """A hyperparameter file or value that cannot be used."""


class RunError(SlimrlError):
    """A training run folder that is missing pieces or cannot be read."""


class ScenarioDriftWarning(UserWarning):
    """A run's saved scenario differs from the scenario file it was named after."""


class SweepError(SlimrlError):
    """A sweep file (``slimrl sweep``) or a sweep folder that cannot be used."""
