"""One module per `fer` command: `fer train-supervised` runs jobs/train_supervised.py.

A stage's module declares `STAGE` and `run(job)` (see dag/runner.py): it reads its
paths from the stage list and calls the science in the phase packages. Keeping one
command per module keeps each stage's import closure (its code dependencies,
dag/codedeps.py) to what it really runs.
"""
