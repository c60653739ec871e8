"""The complete Optuna example of docs/python.md runs and prunes."""
import os
import re

import optuna

from conftest import ROOT


def test_the_optuna_example_of_the_docs_runs():
    text = open(os.path.join(ROOT, "docs", "python.md")).read()
    section = text.split("## A complete Optuna example", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    scope = {"__name__": "docs_example"}
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    exec(compile(code, "docs/python.md", "exec"), scope)
    study = scope["study"]
    states = [t.state for t in study.trials]
    assert len(states) == 40
    assert states.count(optuna.trial.TrialState.PRUNED) >= 5
    assert study.best_value > 0.7
