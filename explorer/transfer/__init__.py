"""Transfer learning: a trained ResNet's features, a new head, a new data set. ``recipe`` is the
fine-tuning config as data; ``finetune`` runs it and saves the result as a checkpoint."""
