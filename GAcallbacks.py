"""Training callbacks (the design card's GAcallbacks): one validation pass per epoch, the F1 stop
rule, the val-loss early stop, the NaN stop and the per-epoch backup.

The code is in gacrystal/training/callbacks.py; this file re-exports it for code written against the
original layout:

    from GAcallbacks import StopWhenF1Reached, ValidationMetrics
"""
from gacrystal.training.callbacks import (BackupEachEpoch, EarlyStopOnValLoss,  # noqa: F401
                                          HistoryRows, StopOnNaN, StopWhenF1Reached,
                                          ValidationMetrics, classification_metrics, report_text)
