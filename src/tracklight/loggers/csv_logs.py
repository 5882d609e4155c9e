"""Lightning's module name for the CSV logger: ``from tracklight.loggers.csv_logs import CSVLogger`` works as
``from lightning.pytorch.loggers.csv_logs import CSVLogger`` does. The classes live in :mod:`tracklight.loggers.csv`.
"""

from tracklight.loggers.csv import CSVExperiment as ExperimentWriter
from tracklight.loggers.csv import CSVLogger

__all__ = ["CSVLogger", "ExperimentWriter"]
