"""Training the CIFAR nets of §4.2: ``recipe`` (the paper's recipe as data, and the engine's speed
switches apart from it), ``step`` (one SGD iteration, to read beside the paper), ``engine`` and
``lockstep`` (several models in lock-step on the same batches, around that step),
``evaluate`` (one validation pass) and ``distributed`` (torchrun)."""
