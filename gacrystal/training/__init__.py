"""Training (GAmain.py): from a split folder to a run folder of deliverables.

- data: the tf.data pipeline (reading, augmenting, batching);
- fit: the steps of a run (load the splits, build and compile, train or restore);
- folding: the network as training runs it, the frozen trunk's BatchNorm folded into its
  convolutions (the same variables);
- callbacks: the validation pass, the F1 stop rule, the backups;
- keras_state: the Keras internals that an exact resume needs;
- deliverables: what a finished run writes (models, report, OOD statistics, ONNX);
- report: the run report (curves, confusion matrix, reliability diagram, report.html);
- runs: the run folder's books (config.json, history.csv, the next free name, the run a command
  continues);
- distribution: tf.distribute, mixed precision and XLA;
- multiworker: training over several worker processes (MultiWorkerMirroredStrategy);
- finetune: a model's head retrained on a reviewer's verdicts (GAfinetune.py).
"""
