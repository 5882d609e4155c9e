"""MLflow: ``MLFlowLogger`` and ``mlflow_key``, MLflow's one key rule (the rest of the package is private).

``logger`` is the logger; ``sink`` the delivery sink that talks to MLflow on the worker, through ``backends``
(its REST API or ``MlflowClient``); ``keys``, ``store``, ``artifacts`` and ``resume`` hold MLflow's key
rules, where runs go, staged files and resume. Imports are absolute, so ``import mlflow`` is always the SDK.
"""

from tracklight.loggers.mlflow.keys import mlflow_key
from tracklight.loggers.mlflow.logger import MLFlowLogger

__all__ = ["MLFlowLogger", "mlflow_key"]
